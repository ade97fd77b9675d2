"""Why the consistency family does not beat supervised on Fashion-MNIST-1000: an ablation judged
on a validation split only.

    python bench/consistency_ablation.py --seed 0 --steps 3000 [--threads 1] [--variants NAME ...]

Same budget and settings as bench/fashion_mnist.py, except that 5,000 class-balanced training
images are held out as a validation split (saved in each run's split.json) and only
validation accuracy is recorded: this script never reads the test split's accuracy, so what it
finds can be used to change defaults without selecting on test.

Variants: each method at its paper default (consistency weight 100, VAT epsilon 6) against a
weight ten times lower, Mean Teacher with a short-memory teacher (EMA 0.99 for the whole run),
VAT with a smaller perturbation, and supervised / Pi-model with the Mean Teacher paper's noise
(input noise 0.15, dropout 0.5) instead of augmentation alone. Runs are resumable under bench/runs/consistency_ablation/;
results are appended to bench/results/consistency_ablation.jsonl.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from fashion_mnist import COMMON, method_options, read_results, record_result
from mentor.train import TrainConfig, train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "consistency_ablation.jsonl")
RUNS = os.path.join(os.path.dirname(__file__), "runs", "consistency_ablation")
VALIDATION_SIZE = 5000

# name -> (method, options on top of the method's bench/fashion_mnist.py options, config changes)
MT_NOISE = {"input_noise": 0.15, "model_options": {"widths": [16, 32, 64], "dropout": 0.5}}  # Mean Teacher B.1
VARIANTS = {
    "supervised": ("supervised", {}, {}),
    "pi_model-w100": ("pi_model", {}, {}),
    "pi_model-w10": ("pi_model", {"consistency_weight": 10.0}, {}),
    "temporal_ensembling-w100": ("temporal_ensembling", {}, {}),
    "temporal_ensembling-w10": ("temporal_ensembling", {"consistency_weight": 10.0}, {}),
    "mean_teacher-w100": ("mean_teacher", {}, {}),
    "mean_teacher-w10": ("mean_teacher", {"consistency_weight": 10.0}, {}),
    "mean_teacher-w100-ema0.99": ("mean_teacher", {"ema_decay": 0.99}, {}),
    "ict-w100": ("ict", {}, {}),
    "ict-w10": ("ict", {"consistency_weight": 10.0}, {}),
    "vat-eps6": ("vat", {}, {}),
    "vat-eps2": ("vat", {"epsilon": 2.0}, {}),
    # The papers' noise: input noise 0.15 and dropout 0.5 on top of flip + translate, for both sides.
    "supervised-noise": ("supervised", {}, MT_NOISE),
    "pi_model-w100-noise": ("pi_model", {}, MT_NOISE),
}


def run(name: str, seed: int, steps: int) -> dict:
    method, extra, changes = VARIANTS[name]
    out = os.path.join(RUNS, f"{name}-seed{seed}")
    config = TrainConfig(method=method, steps=steps, seed=seed, out=out, validation_size=VALIDATION_SIZE,
                         method_options={**method_options(method, steps), **extra}, **{**COMMON, **changes})
    resume = os.path.exists(os.path.join(out, "checkpoint.pt"))
    summary = train(config, resume=resume)
    val = {k: v for k, v in summary.items() if "val_accuracy" in k}  # never the test split's figures
    return {"variant": name, "method": method, "seed": seed, "steps": steps, **val,
            "wall_seconds": summary["wall_seconds"], "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
            "config": config.to_dict()}


def table(rows) -> str:
    lines = ["| variant | seed | final val acc. | median of the run's evals | EMA val acc. | method's teacher val acc. |",
             "| --- | --- | --- | --- | --- | --- |"]

    def pct(row, key):
        return "-" if row.get(key) is None else f"{100 * row[key]:.2f}"

    for row in sorted(rows, key=lambda r: list(VARIANTS).index(r["variant"])):
        lines.append(f"| {row['variant']} | {row['seed']} | {pct(row, 'final_val_accuracy')} | "
                     f"{pct(row, 'median_last_val_accuracy')} | {pct(row, 'final_ema_val_accuracy')} | "
                     f"{pct(row, 'final_teacher_val_accuracy')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1: share 2 cores with another)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)

    def finished(name):  # read afresh each time: another process may share the variants
        return any(r["variant"] == name and r["seed"] == args.seed and r["steps"] == args.steps
                   for r in read_results(RESULTS))

    if not args.table_only:
        for name in args.variants:
            if not finished(name):
                record_result(RESULTS, run(name, args.seed, args.steps))
    print(table([r for r in read_results(RESULTS) if r["steps"] == args.steps and r["seed"] == args.seed
                 and r["variant"] in args.variants]))

if __name__ == "__main__":
    main()
