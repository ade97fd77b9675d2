"""DivideMix's settings on Fashion-MNIST with 40% symmetric label noise, chosen on validation.

    python bench/divide_mix.py --steps 3000 --seeds 0 [--variants ...] [--threads 1]

The problem of `bench/mpl.py compare --problem fmnist_noise40` with 5,000 training images held
out as a clean, class-balanced validation split (the other 55,000 are labeled, 40% of them
redrawn uniformly): every run is `mentor train --dataset fashion_mnist --num-labeled 55000
--validation-size 5000 --label-noise 0.4 --method M --steps S --seed K` with the plain
command line's other defaults. It records no test figure, so what it finds may set
defaults; the test comparison is bench/mpl.py compare.

Each DivideMix run also logs, every tenth of the run, the share of the labeled set each network
calls clean and that division's precision and recall against the known corrupted labels (a
label redrawn to its own class counts as clean), which tells a failure of the co-divide from a
failure of the training on it. Rows go to bench/results/divide_mix.jsonl; the table is printed
for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from fashion_mnist import read_results, record_result
from mentor.train import TrainConfig
from mentor.train.trainer import Trainer

RESULTS = os.path.join(os.path.dirname(__file__), "results", "divide_mix.jsonl")
PROBLEM = {"dataset": "fashion_mnist", "num_labeled": 55000, "validation_size": 5000, "label_noise": 0.4}
VARIANTS = {  # name -> (method, method options); the DivideMix rows name every value they set
    "supervised": ("supervised", {}),
    "divide_mix alpha=4 lambda_u=25 (CIFAR-10 50% noise)": ("divide_mix", {"mixup_alpha": 4.0, "unlabeled_weight": 25.0}),
    "divide_mix alpha=0.5 lambda_u=25": ("divide_mix", {"mixup_alpha": 0.5, "unlabeled_weight": 25.0}),
    "divide_mix alpha=0.5 lambda_u=5": ("divide_mix", {"mixup_alpha": 0.5, "unlabeled_weight": 5.0}),
    "divide_mix alpha=0.5 lambda_u=1": ("divide_mix", {"mixup_alpha": 0.5, "unlabeled_weight": 1.0}),
    "divide_mix alpha=0.5 lambda_u=0 (Clothing1M)": ("divide_mix", {"mixup_alpha": 0.5, "unlabeled_weight": 0.0}),
    "divide_mix alpha=0.1 lambda_u=5": ("divide_mix", {"mixup_alpha": 0.1, "unlabeled_weight": 5.0}),
    "divide_mix alpha=0.1 lambda_u=5 threshold=0.2": ("divide_mix", {"mixup_alpha": 0.1, "unlabeled_weight": 5.0,
                                                                     "threshold": 0.2}),
    "divide_mix alpha=0.1 lambda_u=5 threshold=0.05": ("divide_mix", {"mixup_alpha": 0.1, "unlabeled_weight": 5.0,
                                                                      "threshold": 0.05}),
}


def division_quality(method, wrong: np.ndarray) -> dict:
    """Per network: the share called clean, and precision / recall of 'clean' against the truth."""
    out = {}
    for name, w in method.division.items():
        clean = w.cpu().numpy() > method.threshold
        out[name] = {"clean": round(float(clean.mean()), 3),
                     "precision": round(float(1 - wrong[clean].mean()), 3) if clean.any() else None,
                     "recall": round(float((clean & ~wrong).sum() / max(1, (~wrong).sum())), 3)}
    return out


def run(label: str, method: str, options: dict, steps: int, seed: int) -> dict:
    config = TrainConfig(method=method, steps=steps, seed=seed, method_options=options, eval_every=0,
                         device="cpu", progress=False, **PROBLEM)
    trainer = Trainer(config)
    split, y_true = trainer.split, trainer.dataset.y_train
    corrupted = dict(zip(split.noisy, split.noisy_labels))
    wrong = np.array([corrupted.get(i, y_true[i]) != y_true[i] for i in split.labeled])
    trace, started = [], time.perf_counter()
    for checkpoint in np.linspace(0, steps, 11)[1:].round().astype(int):
        # fit() trains from the current step up to config.steps; the learning-rate schedule and the
        # method's phases keep the full run length they were given at construction.
        trainer.config.steps = int(checkpoint)
        trainer.fit()
        point = {"step": int(checkpoint), "val_accuracy": trainer.evaluate()["val_accuracy"]}
        if getattr(trainer.method, "division", None) is not None:
            point.update(division_quality(trainer.method, wrong))
        trace.append(point)
        print(label, point, flush=True)
    return {"label": label, "method": method, "options": options, "steps": steps, "seed": seed,
            "val_accuracy": trace[-1]["val_accuracy"], "trace": trace, "wrong_labels": round(float(wrong.mean()), 4),
            "seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
            "config": config.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), metavar="NAME")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = {k: v for k, v in VARIANTS.items() if not args.variants or k in args.variants}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    done = read_results(RESULTS)
    for seed in args.seeds:
        for label, (method, options) in plan.items():
            if args.table_only or any(r["label"] == label and r["seed"] == seed and r["steps"] == args.steps
                                      for r in done):
                continue
            done.append(run(label, method, options, args.steps, seed))
            record_result(RESULTS, done[-1])
    print(f"\nFashion-MNIST, 55,000 labels (40% redrawn), {args.steps} steps, seeds {args.seeds}: "
          "clean validation accuracy, and the last division (mean of the two networks)")
    print("| run | seeds | val acc. | called clean | precision | recall | s / run |\n| --- | --- | --- | --- | --- | --- | --- |")
    for label in plan:
        rows = [r for r in done if r["label"] == label and r["seed"] in args.seeds and r["steps"] == args.steps]
        if not rows:
            continue
        last = [r["trace"][-1] for r in rows]
        quality = {key: [net[key] for point in last for name, net in point.items() if name.startswith("net")]
                   for key in ("clean", "precision", "recall")}
        shown = {k: f"{100 * statistics.mean(v):.1f}" if v else "–" for k, v in quality.items()}
        print(f"| {label} | {len(rows)} | {100 * statistics.mean(r['val_accuracy'] for r in rows):.2f} | "
              f"{shown['clean']} | {shown['precision']} | {shown['recall']} | "
              f"{statistics.mean(r['seconds'] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
