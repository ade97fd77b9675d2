"""Meta Pseudo Labels next to supervised training, from the plain command line.

    python bench/mpl.py ablation --problem fmnist1000 --steps 1500 --seeds 0 [--variants ...]
    python bench/mpl.py defaults --problem fmnist1000 --steps 1500 --seeds 0 1 2
    python bench/mpl.py compare  --problem digits --steps 3000 --seeds 0 1 2 [--best KEY=VALUE ...]

Every run is what `mentor train --method M --dataset D --num-labeled N --steps S --seed K`
does with every other flag at its default (mlp model, 64 labeled + 448 unlabeled per step,
SGD lr 0.03 momentum 0.9, cosine schedule). The only additions: the compare mode gives feature
data (digits) a Gaussian strong view (--strong-noise 0.15), which FixMatch and UDA need, for
every method alike.

- ablation: holds out a class-balanced validation split (saved in each run's split.json) and
  records validation accuracy only; it never reads a test figure, so what it finds may set
  defaults. Variants: MPL's defaults against one change each (the control without feedback,
  the paper's scalar feedback, cosine, a stronger feedback, argmax / soft labels, a waiting
  or finetuning phase, the paper's student that sees labels only when finetuned); Label
  Propagation's defaults against a smaller graph (k), a shorter or longer labeled-only start
  and a heavier pseudo-label loss.
- defaults: the check of issue "MPL that earns its place": MPL with no option against
  supervised on the same split and steps; prints PASS when the mean student is within 0.5
  points of supervised or above it and no seed collapsed (a seed > 5 points below its
  supervised run).
- compare: supervised, Pseudo Labels, FixMatch, UDA, MPL (defaults), MPL without feedback
  (the control), MPL with the validation-chosen setting (--best), Reduced MPL, and the
  survey's methods (MixMatch, ReMixMatch, online Pseudo-Label, Label Propagation, DivideMix,
  distillation); student and teacher accuracy. On feature data, methods that compare two
  augmentations (MixMatch) get Gaussian input noise of the same std as their augmentation.
  Since 2026-12-02 this mode is `mentor compare --folds 0` (mentor.compare): every label
  trains, the test split scores, each run is a cell under bench/runs/mpl-compare/PROBLEM-STEPS
  (resumed when run again), and each method's difference to supervised training comes with a
  paired 95% interval over the test examples. Its rows before that date are in
  bench/results/mpl.jsonl.

Ablation and defaults rows are appended to bench/results/mpl.jsonl (finished runs are skipped
when the command is run again) and the table is printed for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from fashion_mnist import read_results, record_result
from mentor.cli import parse_options
from mentor.registry import METHODS
from mentor.train import TrainConfig, train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "mpl.jsonl")

PROBLEMS = {  # name -> the dataset flags of the command line, and the validation size of the ablation
    "fmnist1000": ({"dataset": "fashion_mnist", "num_labeled": 1000}, 5000),
    "fmnist100": ({"dataset": "fashion_mnist", "num_labeled": 100}, 5000),
    "digits": ({"dataset": "digits", "num_labeled": 50}, 300),
    "wine": ({"dataset": "wine", "num_labeled": 15}, 0),
    "breast_cancer": ({"dataset": "breast_cancer", "num_labeled": 20}, 0),
    # DivideMix's problem: every training label known, 40% of them redrawn uniformly (seeded)
    "fmnist_noise40": ({"dataset": "fashion_mnist", "num_labeled": 60000, "label_noise": 0.4}, 0),
}
FEATURE_STRONG_NOISE = 0.15  # compare mode, feature data only: the strong view FixMatch and UDA need
FEATURE_DATASETS = ("digits", "wine", "breast_cancer")

MPL = "meta_pseudo_labels"
ABLATION = {  # name -> (method, method options)
    "supervised": ("supervised", {}),
    "mpl": (MPL, {}),
    "mpl feedback=none": (MPL, {"feedback": "none"}),
    "mpl feedback=dot": (MPL, {"feedback": "dot"}),
    "mpl feedback=cosine": (MPL, {"feedback": "cosine"}),
    "mpl feedback_weight=10": (MPL, {"feedback_weight": 10.0}),
    "mpl labels=argmax": (MPL, {"labels": "argmax"}),
    "mpl labels=soft": (MPL, {"labels": "soft"}),
    "mpl label_view=weak": (MPL, {"label_view": "weak"}),
    "mpl labels=soft label_view=weak": (MPL, {"labels": "soft", "label_view": "weak"}),
    "mpl student_wait_steps=0.1": (MPL, {"student_wait_steps": 0.1}),
    "mpl finetune_steps=0.1": (MPL, {"finetune_steps": 0.1}),
    "mpl paper student (labels only in finetuning 0.1)": (MPL, {"student_labeled_weight": 0.0,
                                                                "finetune_steps": 0.1}),
    "reduced_mpl": ("reduced_mpl", {}),
    "reduced_mpl large_teacher_steps=0.25": ("reduced_mpl", {"large_teacher_steps": 0.25}),
    "reduced_mpl large_teacher_steps=0.75": ("reduced_mpl", {"large_teacher_steps": 0.75}),
    # MixMatch and ReMixMatch: the paper's mixup and unlabeled weight against gentler ones (every
    # row names both values, so rows stay meaningful when the defaults change)
    "mixmatch": ("mixmatch", {}),
    "remixmatch": ("remixmatch", {}),
    "mixmatch mixup_alpha=0.75 unlabeled_weight=75 (defaults before 2026-12-02)": ("mixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 75.0}),
    "mixmatch mixup_alpha=0.75 unlabeled_weight=25": ("mixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 25.0}),
    "mixmatch mixup_alpha=0.75 unlabeled_weight=10": ("mixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 10.0}),
    "mixmatch mixup_alpha=0.75 unlabeled_weight=3": ("mixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 3.0}),
    "mixmatch mixup_alpha=0.3 unlabeled_weight=75": ("mixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 75.0}),
    "mixmatch mixup_alpha=0.3 unlabeled_weight=25": ("mixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 25.0}),
    "mixmatch mixup_alpha=0.3 unlabeled_weight=10": ("mixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 10.0}),
    "mixmatch mixup_alpha=0.3 unlabeled_weight=3": ("mixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 3.0}),
    "mixmatch mixup_alpha=0.1 unlabeled_weight=75": ("mixmatch", {"mixup_alpha": 0.1, "unlabeled_weight": 75.0}),
    "remixmatch mixup_alpha=0.75 unlabeled_weight=1.5 (defaults before 2026-12-02)": ("remixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 1.5}),
    "remixmatch mixup_alpha=0.3 unlabeled_weight=1.5": ("remixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 1.5}),
    "remixmatch mixup_alpha=0.1 unlabeled_weight=1.5": ("remixmatch", {"mixup_alpha": 0.1, "unlabeled_weight": 1.5}),
    "remixmatch mixup_alpha=0.1 unlabeled_weight=0.5": ("remixmatch", {"mixup_alpha": 0.1, "unlabeled_weight": 0.5}),
    "remixmatch mixup_alpha=0.75 unlabeled_weight=1.5 rotation_weight=0": ("remixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 1.5, "rotation_weight": 0.0}),
    "remixmatch mixup_alpha=0.3 unlabeled_weight=1.5 rotation_weight=0": ("remixmatch", {"mixup_alpha": 0.3, "unlabeled_weight": 1.5, "rotation_weight": 0.0}),
    "remixmatch mixup_alpha=0.1 unlabeled_weight=0.5 unmixed_weight=0.17 rotation_weight=0.17": ("remixmatch", {"mixup_alpha": 0.1, "unlabeled_weight": 0.5, "unmixed_weight": 0.17, "rotation_weight": 0.17}),
    "remixmatch mixup_alpha=0.1 unlabeled_weight=0 (unmixed only)": ("remixmatch", {"mixup_alpha": 0.1, "unlabeled_weight": 0.0}),
    "online_pseudo_label": ("online_pseudo_label", {}),
    "online_pseudo_label labels=soft mixup_alpha=1 (defaults before 2026-12-02)": ("online_pseudo_label", {"labels": "soft", "mixup_alpha": 1.0}),
    "online_pseudo_label labels=soft mixup_alpha=0.3": ("online_pseudo_label", {"labels": "soft", "mixup_alpha": 0.3}),
    "online_pseudo_label labels=soft mixup_alpha=0.1": ("online_pseudo_label", {"labels": "soft", "mixup_alpha": 0.1}),
    "online_pseudo_label labels=soft mixup_alpha=0": ("online_pseudo_label", {"labels": "soft", "mixup_alpha": 0.0}),
    "online_pseudo_label labels=hard mixup_alpha=0": ("online_pseudo_label", {"labels": "hard", "mixup_alpha": 0.0}),
    # distillation (teacher trained in the run): the learning-rate schedule per phase, the teacher's share and width
    # (rows before 2026-12-02 had an equal teacher by default: they name teacher_width=1 or the teacher's options)
    "distillation": ("distillation", {}),
    "distillation phase_schedule=false": ("distillation", {"teacher_width": 1.0, "phase_schedule": False}),
    "distillation phase_schedule=true": ("distillation", {"teacher_width": 1.0, "phase_schedule": True}),
    "distillation phase_schedule=true teacher_steps=0.3": ("distillation", {"teacher_width": 1.0, "phase_schedule": True,
                                                                            "teacher_steps": 0.3}),
    "distillation phase_schedule=true teacher_steps=0.7": ("distillation", {"teacher_width": 1.0, "phase_schedule": True,
                                                                            "teacher_steps": 0.7}),
    "distillation teacher 4x wider": ("distillation", {"teacher_options": {"hidden": [256, 256]}, "phase_schedule": False}),
    "distillation teacher 4x wider phase_schedule=true": ("distillation", {"teacher_options": {"hidden": [256, 256]},
                                                                           "phase_schedule": True}),
    "distillation teacher 4x wider teacher_steps=0.7": ("distillation", {"teacher_options": {"hidden": [256, 256]},
                                                                          "teacher_steps": 0.7, "phase_schedule": False}),
    "distillation teacher 4x wider teacher_steps=0.3 phase_schedule=true": (
        "distillation", {"teacher_options": {"hidden": [256, 256]}, "teacher_steps": 0.3, "phase_schedule": True}),
    "distillation teacher 4x wider teacher_steps=0.7 phase_schedule=true": (
        "distillation", {"teacher_options": {"hidden": [256, 256]}, "teacher_steps": 0.7, "phase_schedule": True}),
    "distillation teacher_width=4 phase_schedule=true unlabeled_weight=1": ("distillation", {"unlabeled_weight": 1.0}),
    "distillation unlabeled_weight=3": ("distillation", {"unlabeled_weight": 3.0}),
    "distillation unlabeled_weight=0.3": ("distillation", {"unlabeled_weight": 0.3}),
    "distillation unlabeled_weight=10": ("distillation", {"unlabeled_weight": 10.0}),
    "distillation unlabeled_weight=3 teacher_steps=0.4": ("distillation", {"unlabeled_weight": 3.0, "teacher_steps": 0.4}),
    "distillation temperature=2": ("distillation", {"temperature": 2.0}),
    "distillation teacher_steps=0.4": ("distillation", {"teacher_steps": 0.4}),
    # DivideMix on clean labels: how much of the labeled set its co-divide may call noisy
    "divide_mix": ("divide_mix", {}),
    "divide_mix threshold=0.2": ("divide_mix", {"threshold": 0.2}),
    "divide_mix threshold=0.05": ("divide_mix", {"threshold": 0.05}),
    # Label Propagation's graph and schedule (Iscen et al. use k = 50 on 50,000 CIFAR images)
    "label_propagation": ("label_propagation", {}),
    "label_propagation k=50 (defaults before 2026-12-02)": ("label_propagation", {"k": 50}),
    "label_propagation k=10": ("label_propagation", {"k": 10}),
    "label_propagation k=20": ("label_propagation", {"k": 20}),
    "label_propagation k=50 start_steps=0.5": ("label_propagation", {"k": 50, "start_steps": 0.5}),
    "label_propagation k=50 unlabeled_weight=3": ("label_propagation", {"k": 50, "unlabeled_weight": 3.0}),
}
COMPARE = {
    "supervised": ("supervised", {}),
    "pseudo_label": ("pseudo_label", {}),
    "fixmatch": ("fixmatch", {}),
    "uda": ("uda", {}),
    "mpl (defaults)": (MPL, {}),
    "mpl feedback=none (control)": (MPL, {"feedback": "none"}),
    "reduced_mpl": ("reduced_mpl", {}),
    "reduced_mpl large_teacher_steps=0.25": ("reduced_mpl", {"large_teacher_steps": 0.25}),
    "reduced_mpl large_teacher_steps=0.75": ("reduced_mpl", {"large_teacher_steps": 0.75}),
    # the survey's methods, defaults as registered; the rows before a change of defaults name the old values
    "mixmatch": ("mixmatch", {}),
    "mixmatch mixup_alpha=0.75 unlabeled_weight=75 (defaults before 2026-12-02)": (
        "mixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 75.0}),
    "remixmatch": ("remixmatch", {}),
    "remixmatch mixup_alpha=0.75 unlabeled_weight=1.5 (defaults before 2026-12-02)": (
        "remixmatch", {"mixup_alpha": 0.75, "unlabeled_weight": 1.5}),
    "online_pseudo_label": ("online_pseudo_label", {}),
    "online_pseudo_label labels=soft mixup_alpha=1 (defaults before 2026-12-02)": (
        "online_pseudo_label", {"labels": "soft", "mixup_alpha": 1.0}),
    "label_propagation": ("label_propagation", {}),
    "label_propagation k=50 (defaults before 2026-12-02)": ("label_propagation", {"k": 50}),
    "divide_mix": ("divide_mix", {}),
    "divide_mix mixup_alpha=4 unlabeled_weight=25 (defaults before 2026-12-02)": (
        "divide_mix", {"mixup_alpha": 4.0, "unlabeled_weight": 25.0}),
    "distillation": ("distillation", {}),
    "distillation teacher_width=1 phase_schedule=false (defaults before 2026-12-02)": (
        "distillation", {"teacher_width": 1.0, "phase_schedule": False}),
    "distillation teacher_width=4 phase_schedule=true unlabeled_weight=1": ("distillation", {"unlabeled_weight": 1.0}),
}


def run(mode: str, problem: str, steps: int, seed: int, label: str, method: str, options: dict,
        feature_noise: bool = False) -> dict:
    flags, validation_size = PROBLEMS[problem]
    config = TrainConfig(method=method, steps=steps, seed=seed, method_options=options, eval_every=0,
                         device="cpu", progress=False, **flags)
    if mode == "ablation":
        config.validation_size = validation_size
    if feature_noise and flags["dataset"] in FEATURE_DATASETS:
        config.strong_noise = FEATURE_STRONG_NOISE
        if METHODS.get(method).second_view:  # MixMatch's two augmentations: the same noise on feature data
            config.input_noise = FEATURE_STRONG_NOISE
    started = time.perf_counter()
    summary = train(config)
    split = "val" if mode == "ablation" else "test"  # the ablation never reads a test figure
    return {"mode": mode, "problem": problem, "steps": steps, "seed": seed, "label": label, "method": method,
            "accuracy": summary[f"final_{split}_accuracy"],
            "teacher_accuracy": summary.get(f"final_teacher_{split}_accuracy"), "split": split,
            "seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
            "config": config.to_dict()}


def compare_mode(problem: str, steps: int, seeds, plan: dict, threads) -> None:
    """The compare mode through mentor.compare (folds 0: the test split scores every label's run)."""
    from mentor.compare import compare, format_tables
    from mentor.compare.plan import entry_text

    flags, _ = PROBLEMS[problem]
    config = TrainConfig(steps=steps, eval_every=0, device="cpu", progress=False, **flags)
    entries = {label: entry_text(method, options) for label, (method, options) in plan.items()}
    out = os.path.join(os.path.dirname(__file__), "runs", "mpl-compare", f"{problem}-{steps}")
    jobs = 2 if threads == 1 else 1  # --threads 1: two single-threaded workers share the 2 cores
    result = compare(config, methods=list(entries.values()), seeds=seeds, folds=0, out=out, jobs=jobs, resume="auto",
                     baselines=[])
    print(f"\ncompare: {problem}, {steps} steps, seeds {seeds}; rows as labelled here:")
    for label, text in entries.items():
        teachers = [json.load(open(os.path.join(out, "cells", r["cell"], "summary.json"))).get(
            "final_teacher_test_accuracy") for r in result["cells"] if r["label"] == text]
        teachers = [t for t in teachers if t is not None]
        print(f"- {label}: `{text}`" + (f" (its teacher: {mean_std(teachers)})" if teachers else ""))
    print(format_tables(result))


def mean_std(values) -> str:
    values = [100 * v for v in values]
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def table(rows, mode: str) -> str:
    split = "validation" if mode == "ablation" else "test"
    lines = [f"| run | seeds | student {split} acc. (mean ± std) | its teacher | s / run |", "| --- | --- | --- | --- | --- |"]
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        teacher = [r["teacher_accuracy"] for r in mine if r["teacher_accuracy"] is not None]
        lines.append(f"| {label} | {len(mine)} | {mean_std([r['accuracy'] for r in mine])} | "
                     f"{mean_std(teacher) if teacher else '–'} | {statistics.mean(r['seconds'] for r in mine):.0f} |")
    return "\n".join(lines)


def defaults_verdict(rows) -> str:
    """PASS: MPL's mean student >= supervised - 0.5 points, and no seed > 5 points below its supervised run."""
    supervised = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "supervised"}
    mpl = {r["seed"]: r["accuracy"] for r in rows if r["method"] == MPL}
    seeds = sorted(set(supervised) & set(mpl))
    if not seeds:
        return "no pair of runs yet"
    gap = 100 * statistics.mean(mpl[s] - supervised[s] for s in seeds)
    worst = min(100 * (mpl[s] - supervised[s]) for s in seeds)
    ok = gap >= -0.5 and worst >= -5.0
    return (f"{'PASS' if ok else 'FAIL'}: MPL − supervised = {gap:+.2f} points (mean of {len(seeds)} seeds), "
            f"worst seed {worst:+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("ablation", "defaults", "compare"))
    parser.add_argument("--problem", choices=sorted(PROBLEMS), required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", help="ablation / compare: only these rows")
    parser.add_argument("--best", nargs="+", default=[], metavar="KEY=VALUE",
                        help="compare: MPL options chosen on the ablation's validation split (adds a row)")
    parser.add_argument("--threads", type=int, help="torch threads (1 lets two benchmarks share 2 cores)")
    parser.add_argument("--feature-noise", action="store_true",
                        help="ablation on feature data: the compare mode's views (strong and input noise)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "ablation" and not PROBLEMS[args.problem][1]:
        parser.error(f"{args.problem} is too small for a validation split; ablate on fmnist or digits")
    plan = {"ablation": ABLATION, "compare": dict(COMPARE),
            "defaults": {"supervised": ("supervised", {}), "mpl (defaults)": (MPL, {})}}[args.mode]
    if args.best:
        best = parse_options(args.best, "--best")
        plan["mpl (validation-chosen: " + " ".join(args.best) + ")"] = (MPL, best)
    if args.variants:
        plan = {k: v for k, v in plan.items() if k in args.variants}
    if args.mode == "compare":
        compare_mode(args.problem, args.steps, args.seeds, plan, args.threads)
        return
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    done = read_results(RESULTS)

    noised = args.feature_noise and PROBLEMS[args.problem][0]["dataset"] in FEATURE_DATASETS

    def mine(r):  # rows of this mode, problem and length, with the same views (ablations with and without noise)
        return (r["mode"] == args.mode and r["problem"] == args.problem and r["steps"] == args.steps
                and (r["config"]["strong_noise"] is not None) == noised)

    if not args.table_only:
        for seed in args.seeds:
            for label, (method, options) in plan.items():
                if any(mine(r) and r["label"] == label and r["seed"] == seed for r in done):
                    continue
                row = run(args.mode, args.problem, args.steps, seed, label, method, options, args.feature_noise)
                record_result(RESULTS, row)
                done.append(row)
    rows = [r for r in done if mine(r) and r["label"] in plan and r["seed"] in args.seeds]
    print(f"\n{args.mode}: {args.problem}, {args.steps} steps, seeds {args.seeds}\n" + table(rows, args.mode))
    if args.mode == "defaults":
        print(defaults_verdict(rows))


if __name__ == "__main__":
    main()
