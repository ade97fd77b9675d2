"""Noisy Student's claims at CPU scale, on Fashion-MNIST with 1,000 labels.

    python bench/noisy_student.py rounds     --seeds 0 1 2 --steps 1500
    python bench/noisy_student.py ablation   --seeds 0 1 2 --steps 1500
    python bench/noisy_student.py robustness --seeds 0 1 2 --steps 1500
    python bench/noisy_student.py control    --seeds 0 1 2 --steps 1500 --tag dropout0

Every run is `mentor noisy-student --dataset fashion_mnist --num-labeled 1000 --steps S
--validation-size 5000 --seed K --rounds 2` with every other flag at its default (mlp 64-64,
64 labeled + 448 pseudo-labeled per step, SGD lr 0.03 momentum 0.9, cosine; students: 4x
wider (mlp 256-256), soft labels, threshold 0.3, balanced, RandAugment without Cutout,
no dropout; the rows without a tag were measured with dropout 0.5, the first default; `--tag dropout0` reruns the pipelines with today's). 5,000 training images
are held out as a validation split: the ablation reads validation accuracy only, so what it
finds may set defaults; the rounds table reports the test split of the default pipeline.

- rounds: claim 1, the noised student beats its teacher and a second round beats the first
  (teacher = the supervised round-0 run; each student is the next round's teacher).
- ablation: claims 2 and 3, round-1 students trained on the same round-1 labels of each
  seed's pipeline, each with one change: no input noise (no RandAugment), no dropout, no
  noise at all, a fixed RandAugment magnitude, FixMatch's Cutout added, hard labels, no
  balancing (every example above the threshold, once), an equal-size student. The mlp has no
  residual blocks: `--model residual_mlp` runs the same pipelines with a residual mlp
  (width 64, two blocks; students width 256) and adds the row without stochastic depth.
- control: claim 1's missing control, the students' own architecture (4x wider: mlp 256-256)
  trained on the labels alone (`supervised`), same steps, seeds and validation split, so the
  table separates what width gives from what the pseudo-labels and the noise give.
- robustness: claim 4, teacher and students on test images with synthetic corruptions
  (Gaussian noise, Gaussian blur, contrast reduction, three severities each), made here.

Runs live in --work (resumable: run the command again after a kill); result rows are
appended to bench/results/noisy_student.jsonl and the tables printed for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from kornia.filters import gaussian_blur2d

from fashion_mnist import read_results, record_result
from mpl import mean_std
from mentor.pipelines.noisy_student import DEFAULT_STUDENT_CUTOUT, DEFAULT_STUDENT_WIDTH, run_noisy_student, student_options
from mentor.train import TrainConfig, Trainer, evaluate, load_run

RESULTS = os.path.join(os.path.dirname(__file__), "results", "noisy_student.jsonl")
VALIDATION = 5000

ABLATION = {  # label -> (method options, TrainConfig changes), on top of the pipeline's student
    "student (defaults)": ({}, {}),
    "no input noise (no RandAugment)": ({}, {"randaugment_ops": 0}),
    "no dropout": ({"student_dropout": 0.0}, {}),
    "dropout 0.5 (the paper)": ({"student_dropout": 0.5}, {}),
    "no stochastic depth": ({"stochastic_depth": 0.0}, {}),
    "no noise at all": ({"student_dropout": 0.0, "stochastic_depth": 0.0}, {"randaugment_ops": 0}),
    "RandAugment at fixed magnitude 0.3": ({}, {"randaugment_magnitude": 0.3}),
    "with Cutout 0.5 (FixMatch's strong view)": ({}, {"cutout": 0.5}),
    "with Cutout 0.5, no dropout": ({"student_dropout": 0.0}, {"cutout": 0.5}),
    "hard labels": ({"labels": "hard"}, {}),
    "no balancing": ({"balance": False}, {}),
    "equal-size student (mlp 64-64)": ({}, {"student_width": 1.0}),
}
RESIDUAL_ONLY = {"no stochastic depth"}  # the mlp has no residual branch to drop
CORRUPTIONS = {  # name -> severities (parameters in [0, 1] image units)
    "gaussian_noise": (0.08, 0.16, 0.32),  # std
    "gaussian_blur": (0.6, 1.0, 1.6),      # sigma in pixels
    "contrast": (0.6, 0.4, 0.2),           # blend factor towards the image mean
}


def base_config(args, seed: int, out: str, **changes) -> TrainConfig:
    return TrainConfig(dataset="fashion_mnist", num_labeled=1000, steps=args.steps, seed=seed, model=args.model,
                       validation_size=VALIDATION, eval_every=0, device="cpu", progress=False, out=out, **changes)


def run_key(args, **key) -> dict:
    """A result row's identity; rows of the default mlp carry no model field, rows of the
    first defaults (dropout 0.5) no tag."""
    return {**key, **({"model": args.model} if args.model != "mlp" else {}), **({"tag": args.tag} if args.tag else {})}


def matching(done: list, key: dict) -> list:
    return [r for r in done if all(r.get(k) == v for k, v in key.items())
            and r.get("model") == key.get("model") and r.get("tag") == key.get("tag")]


def stamp() -> dict:
    return {"threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}


def pipeline_dir(args, seed: int) -> str:
    model = "" if args.model == "mlp" else f"-{args.model}"
    return os.path.join(args.work, f"pipeline{model}-s{seed}-{args.steps}")


def mode_rounds(args, done) -> list:
    rows = []
    for seed in args.seeds:
        key = run_key(args, mode="rounds", seed=seed, steps=args.steps)
        mine = matching(done, key)
        if len(mine) < args.rounds + 1:
            out = pipeline_dir(args, seed)
            started = time.perf_counter()
            table = run_noisy_student(base_config(args, seed, out), args.rounds, out, progress=False)
            seconds = round(time.perf_counter() - started, 1)
            mine = []
            for r in table["rounds"]:
                row = {**key, **r, "pipeline_seconds": seconds, **stamp()}
                record_result(RESULTS, row)
                mine.append(row)
        rows += mine
    print(f"\nrounds: Fashion-MNIST-1000, {args.model}, {args.steps} steps per run, seeds {args.seeds}")
    print("| round | model | seeds | validation acc. (mean ± std) | test acc. (mean ± std) | pseudo-labeled set |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in range(args.rounds + 1):
        at = [r for r in rows if r["round"] == k]
        prefix = "model_" if k == 0 else "student_"
        size = "–" if k == 0 else f"{statistics.mean(r['pseudo_labeled'] for r in at):,.0f}"
        print(f"| {k} | {'teacher (supervised)' if k == 0 else 'noised student'} | {len(at)} | "
              f"{mean_std(r[prefix + 'val_accuracy'] for r in at)} | {mean_std(r[prefix + 'test_accuracy'] for r in at)} | {size} |")
    return rows


def mode_ablation(args, done) -> list:
    rows = []
    for seed in args.seeds:
        labels = os.path.join(pipeline_dir(args, seed), "round-1", "labels")
        if not os.path.exists(os.path.join(labels, "manifest.json")):
            raise SystemExit(f"run `rounds` for seed {seed} first: {labels} is missing")
        for label, (options, changes) in ABLATION.items():
            if (args.variants and label not in args.variants) or (label in RESIDUAL_ONLY and args.model == "mlp"):
                continue
            key = run_key(args, mode="ablation", seed=seed, steps=args.steps, label=label)
            found = matching(done, key)
            if found:
                rows += found
                continue
            slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower())
            model = "" if args.model == "mlp" else f"-{args.model}"
            out = os.path.join(args.work, f"ablation{model}-s{seed}-{args.steps}-{slug}")
            changes = dict(changes)
            width = changes.pop("student_width", DEFAULT_STUDENT_WIDTH)
            changes = {"cutout": DEFAULT_STUDENT_CUTOUT, **changes}
            config = base_config(args, seed, out, method="noisy_student",
                                 method_options={"pseudo_labels": labels, **options}, **changes)
            config.model_options = student_options(config, width)  # the pipeline's (wider) student
            started = time.perf_counter()
            trainer = Trainer(config)
            trainer.fit(resume=os.path.exists(os.path.join(out, "checkpoint.pt")))
            val = trainer.evaluate()["val_accuracy"]  # the ablation never reads a test figure
            row = {**key, "val_accuracy": val, "seconds": round(time.perf_counter() - started, 1), **stamp()}
            record_result(RESULTS, row)
            rows.append(row)
    print(f"\nablation: round-1 students on the same labels, {args.model}, {args.steps} steps, seeds {args.seeds} "
          "(validation only)")
    print("| student | seeds | validation acc. (mean ± std) |")
    print("| --- | --- | --- |")
    for label in ABLATION:
        at = [r for r in rows if r["label"] == label]
        if not at:
            continue
        print(f"| {label} | {len(at)} | {mean_std(r['val_accuracy'] for r in at)} |")
    return rows


def corrupt(x: np.ndarray, name: str, level: float, seed: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> the same images corrupted, uint8."""
    t = torch.from_numpy(x).float() / 255.0
    if name == "gaussian_noise":
        g = torch.Generator().manual_seed(seed)
        t = t + level * torch.randn(t.shape, generator=g)
    elif name == "gaussian_blur":
        size = 2 * int(np.ceil(3 * level)) + 1
        t = gaussian_blur2d(t, (size, size), (level, level))
    else:
        mean = t.mean(dim=(1, 2, 3), keepdim=True)
        t = mean + level * (t - mean)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def mode_control(args, done) -> list:
    """The student's architecture on the labels alone, next to the rounds table's rows."""
    rows = []
    for seed in args.seeds:
        key = run_key(args, mode="control", seed=seed, steps=args.steps)
        mine = matching(done, key)
        if not mine:
            config = base_config(args, seed, None, method="supervised")
            config.model_options = student_options(config, DEFAULT_STUDENT_WIDTH)
            started = time.perf_counter()
            trainer = Trainer(config)
            trainer.fit()
            scores = trainer.evaluate()
            mine = [{**key, "model_options": config.model_options, "test_accuracy": scores["test_accuracy"],
                     "val_accuracy": scores["val_accuracy"], "seconds": round(time.perf_counter() - started, 1),
                     **stamp()}]
            record_result(RESULTS, mine[0])
        rows += mine
    rounds = [r for r in done if r.get("mode") == "rounds" and r.get("tag") == args.tag and r.get("seed") in args.seeds
              and r.get("steps") == args.steps and r.get("model") == (args.model if args.model != "mlp" else None)]
    print(f"\ncontrol: Fashion-MNIST-1000, {args.steps} steps, seeds {args.seeds} (mean ± std)")
    print("| model | trained on | validation acc. | test acc. |")
    print("| --- | --- | --- | --- |")
    teacher = [r for r in rounds if r["round"] == 0]
    if teacher:
        print(f"| teacher ({args.model} 64-64) | labels | {mean_std(r['model_val_accuracy'] for r in teacher)} | "
              f"{mean_std(r['model_test_accuracy'] for r in teacher)} |")
    print(f"| student architecture (x{DEFAULT_STUDENT_WIDTH:g}) | labels | {mean_std(r['val_accuracy'] for r in rows)} | "
          f"{mean_std(r['test_accuracy'] for r in rows)} |")
    for k in sorted({r["round"] for r in rounds} - {0}):
        at = [r for r in rounds if r["round"] == k]
        print(f"| noised student, round {k} | labels + pseudo-labels | "
              f"{mean_std(r['student_val_accuracy'] for r in at)} | {mean_std(r['student_test_accuracy'] for r in at)} |")
    return rows


def mode_robustness(args, done) -> list:
    rows = []
    for seed in args.seeds:
        out = pipeline_dir(args, seed)
        runs = {"teacher": "round-0", **{f"student round {k}": f"round-{k}" for k in range(1, args.rounds + 1)}}
        key = run_key(args, mode="robustness", seed=seed, steps=args.steps)
        found = matching(done, key)
        if found:
            rows += found
            continue
        trainers = {name: load_run(os.path.join(out, run), device="cpu") for name, run in runs.items()}
        first = next(iter(trainers.values()))
        x, y = first.dataset.x_test, torch.as_tensor(first.dataset.y_test)
        sets = {("clean", 0.0): x}
        for name, levels in CORRUPTIONS.items():
            for level in levels:
                sets[(name, level)] = corrupt(x, name, level, seed)
        for (name, level), images in sets.items():
            row = {**key, "corruption": name, "level": level, **stamp()}
            for model_name, trainer in trainers.items():
                row[model_name] = evaluate(trainer.method.eval_model(), torch.as_tensor(images), y,
                                           transform=trainer.views.eval)["accuracy"]
            record_result(RESULTS, row)
            rows.append(row)
    models = ["teacher"] + [f"student round {k}" for k in range(1, args.rounds + 1)]
    print(f"\nrobustness: test accuracy under corruption, seeds {args.seeds} (mean ± std)")
    print("| corruption | level | " + " | ".join(models) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in models) + " |")
    for name, level in dict.fromkeys((r["corruption"], r["level"]) for r in rows):
        at = [r for r in rows if r["corruption"] == name and r["level"] == level]
        print(f"| {name} | {level} | " + " | ".join(mean_std(r[m] for r in at) for m in models) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("rounds", "ablation", "robustness", "control"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="mlp", choices=("mlp", "residual_mlp"),
                        help="the teacher's architecture (students are --student-width wider)")
    parser.add_argument("--work", default="/tmp/noisy_student_bench")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--variants", nargs="+", help="ablation: only these rows")
    parser.add_argument("--tag", help="names a set of rows (e.g. after a default changed); runs live in --work/TAG")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tag:
        args.work = os.path.join(args.work, args.tag)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    done = read_results(RESULTS)
    {"rounds": mode_rounds, "ablation": mode_ablation, "robustness": mode_robustness,
     "control": mode_control}[args.mode](args, done)


if __name__ == "__main__":
    main()
