"""CPU benchmark: Fashion-MNIST with 1,000 labels (100 per class), small CNN, one step budget for all.

    python bench/fashion_mnist.py --seeds 0 1 2 --steps 3000 [--methods supervised uda ...] [--set KEY=VALUE ...]

Each run is a resumable mentor run under bench/runs/fashion_mnist/<method>-seed<k> (a killed
benchmark continues where it stopped when started again). Finished runs are appended as JSON
to bench/results/fashion_mnist.jsonl; the table (mean +- std of the final test accuracy of
the student over seeds, and of the EMA copy) is printed and can be pasted into BENCHMARKS.md.
Settings are chosen once, before any test accuracy was seen, and are the same for every
method except the method's own hyper-parameters; nothing is selected on the test split.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from mentor.train import TrainConfig, train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "fashion_mnist.jsonl")
RUNS = os.path.join(os.path.dirname(__file__), "runs", "fashion_mnist")

COMMON = dict(dataset="fashion_mnist", num_labeled=1000, model="small_cnn", model_options={"widths": [16, 32, 64]},
              batch_size=32, unlabeled_batch_size=224, optimizer="nesterov", lr=0.03, momentum=0.9,
              weight_decay=5e-4, schedule="cosine", ema_decay=0.999, eval_every=500, device="cpu",
              progress=False)


def method_options(method: str, steps: int) -> dict:
    """Each method's own settings: paper defaults, with ramps and phases scaled to the budget."""
    if method == "uda":
        return {"temperature": 0.4, "threshold": 0.8, "unlabeled_weight": 1.0}
    if method == "fixmatch":
        return {"threshold": 0.95, "unlabeled_weight": 1.0}
    if method == "meta_pseudo_labels":
        # MPL Table 8 / C.3 where the budget allows: cosine feedback, label smoothing 0.1,
        # teacher UDA (temperature 0.7, threshold 0.6), student starts after 10% of the steps,
        # finetuning on labeled data for the last 10%.
        return {"labels": "sample", "feedback": "cosine", "label_smoothing": 0.1, "uda_weight": 1.0,
                "uda_temperature": 0.7, "uda_threshold": 0.6, "uda_ramp_steps": steps // 10,
                "student_wait_steps": steps // 10, "finetune_steps": steps // 10, "finetune_lr": 0.003}
    if method == "vat":
        return {"epsilon": 6.0}  # the paper's CIFAR-10 value; inputs here are standardised too
    return {}  # pi_model, temporal_ensembling, mean_teacher, ict: paper defaults, ramp over 25% of the steps


def read_results(path: str) -> list:
    """The finished runs of a results file (one JSON object per line); [] before the first."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def prepare(args, path: str) -> list:
    """What every bench script does first: torch threads from --threads, the results folder,
    and the finished runs of its results file."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return read_results(path)


def record_result(path: str, row: dict) -> None:
    """Print a finished run (without its config) and append it to the results file."""
    print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def row_label(row: dict) -> str:
    return row.get("label", row["method"])  # rows written before --set existed have no label


def label_of(method: str, overrides: dict) -> str:
    """The table's row name: the method, plus any options that differ from its benchmark settings."""
    return method + "".join(f" {k}={v}" for k, v in sorted(overrides.items()))


def run(method: str, seed: int, steps: int, overrides: dict) -> dict:
    label = label_of(method, overrides)
    out = os.path.join(RUNS, f"{label.replace(' ', '_')}-seed{seed}")
    config = TrainConfig(method=method, steps=steps, seed=seed, out=out,
                         method_options={**method_options(method, steps), **overrides}, **COMMON)
    resume = os.path.exists(os.path.join(out, "checkpoint.pt"))
    started = time.perf_counter()
    summary = train(config, resume=resume)
    return {"method": method, "label": label, "seed": seed, "steps": steps,
            "final_test_accuracy": summary["final_test_accuracy"],
            "final_ema_test_accuracy": summary.get("final_ema_test_accuracy"),
            "median_last_test_accuracy": summary.get("median_last_test_accuracy"),
            "final_teacher_test_accuracy": summary.get("final_teacher_test_accuracy"),
            "wall_seconds": summary["wall_seconds"], "process_seconds": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d"), "config": config.to_dict()}


def table(rows) -> str:
    lines = ["| method | seeds | final acc. (mean ± std) | EMA acc. (mean ± std) | method's teacher acc. | s / run |",
             "| --- | --- | --- | --- | --- | --- |"]
    for method in dict.fromkeys(map(row_label, rows)):
        mine = [r for r in rows if row_label(r) == method]

        def fmt(key):
            values = [100 * r[key] for r in mine if r.get(key) is not None]
            if not values:
                return "-"
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.2f} ± {std:.2f}"

        # Wall time depends on the thread count (runs sharing the 2 cores use 1 thread each): by count.
        secs = ", ".join(f"{statistics.mean(r['wall_seconds'] for r in mine if r.get('threads') == t):.0f} "
                         f"({t} thr.)" for t in sorted({r.get("threads") for r in mine}, key=str, reverse=True))
        lines.append(f"| {method} | {len(mine)} | {fmt('final_test_accuracy')} | "
                     f"{fmt('final_ema_test_accuracy')} | {fmt('final_teacher_test_accuracy')} | {secs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["supervised", "uda", "fixmatch", "meta_pseudo_labels"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--table-only", action="store_true", help="print the table of the results file")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; 1 lets two benchmarks share 2 cores)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="method options on top of the benchmark's (e.g. consistency_weight=10, chosen on "
                             "bench/consistency_ablation.py's validation split); the row is labelled with them")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    done = read_results(RESULTS)
    if not args.table_only:
        for seed in args.seeds:
            for method in args.methods:
                label = label_of(method, overrides)
                if any(row_label(r) == label and r["seed"] == seed and r["steps"] == args.steps for r in done):
                    continue
                row = run(method, seed, args.steps, overrides)
                record_result(RESULTS, row)
                done.append(row)
    print(table([r for r in done if r["steps"] == args.steps and r["method"] in args.methods
                 and (args.table_only or row_label(r) == label_of(r["method"], overrides))]))


if __name__ == "__main__":
    main()
