"""Accuracy against wall-clock seconds: train a recipe for a fixed time budget.

    python bench/time_to_accuracy.py --minutes 9 --out runs/tta-fixmatch -- \
        --preset fixmatch-cifar10 --data-path data/cifar10-jpeg.tar.gz --num-labeled 4000 --device cuda
    python bench/time_to_accuracy.py --minutes 9 --out runs/tta-supervised -- \
        --preset fixmatch-cifar10 --method supervised --data-path data/cifar10-jpeg.tar.gz --num-labeled 4000
    python bench/time_to_accuracy.py --minutes 2 --out runs/tta-cpu -- \
        --method fixmatch --dataset fashion_mnist --num-labeled 1000 --model small_cnn --device cpu

Everything after `--` is a `mentor train` command line (a preset, then flags overriding it).
1. Probe: a throw-away trainer of that command runs --probe-steps steps after --warmup steps
   (compilation, cuDNN autotuning), timed with the device synchronised, and one evaluation of
   every model is timed too.
2. Size: steps = (budget - setup - evaluations) / seconds per step, times --margin; the
   learning-rate schedule, warm-up fraction and every phase of the method are laid out for
   that many steps (they are fractions of --steps), so the run ends its schedule in budget.
3. Train: a fresh trainer (same seed) with those steps, evaluated --points times along the
   way (--eval-every steps / points). OUT/curve.jsonl gets one row per evaluation: step, wall
   seconds since the trainer was built (setup, steps, evaluations and checkpoints), every test
   accuracy (student, EMA, teacher) and the training logs; OUT/curve.png plots accuracy against
   seconds. OUT/run is an ordinary mentor run folder (resumable, its split saved). The reported
   figure is the last evaluation, never the best.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from mentor.cli import build_parser, config_from_args
from mentor.train import Trainer


def synchronizer(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def probe(train_args, warmup: int, steps: int) -> dict:
    """Seconds per step (the trainer's own step: schedules and EMA included) and per evaluation of
    the command's trainer (a throw-away one)."""
    started = time.perf_counter()
    config = config_from_args(train_args)
    config.out, config.steps = None, max(config.steps, warmup + steps + 1)
    trainer = Trainer(config)
    setup = time.perf_counter() - started
    sync = synchronizer(trainer.device)
    for _ in range(warmup):
        trainer.train_step()
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    per_step = (time.perf_counter() - started) / steps
    started = time.perf_counter()
    trainer.evaluate()
    per_eval = time.perf_counter() - started
    return {"setup_s": setup, "step_s": per_step, "eval_s": per_eval, "device": trainer.device}


def plan_steps(budget_s: float, measured: dict, points: int, margin: float) -> int:
    usable = budget_s - measured["setup_s"] - points * measured["eval_s"]
    if usable <= 0:
        raise SystemExit(f"the budget ({budget_s:.0f} s) does not cover setup and {points} evaluations "
                         f"({measured['setup_s'] + points * measured['eval_s']:.0f} s); give more --minutes "
                         "or fewer --points")
    return max(points, int(margin * usable / measured["step_s"]))


def accuracies(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.endswith("test_accuracy")}


def plot(curve, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in accuracies(curve[-1]):
        ax.plot([r["wall_s"] for r in curve], [100 * r[key] for r in curve], marker="o", label=key)
    ax.set_xlabel("wall-clock seconds (setup, training and evaluation)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        raise SystemExit("give the training command after --, e.g. -- --preset fixmatch-cifar10 --data-path ...")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, required=True, help="the whole budget, setup and evaluations included")
    parser.add_argument("--out", required=True)
    parser.add_argument("--points", type=int, default=12, help="evaluations along the run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--probe-steps", type=int, default=30)
    parser.add_argument("--margin", type=float, default=0.92, help="share of the estimated steps to plan")
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1:]
    if os.path.exists(os.path.join(args.out, "run")):
        raise SystemExit(f"{args.out} already holds a run; choose another --out")
    wall_start = time.perf_counter()
    budget = 60 * args.minutes
    train_args = build_parser().parse_args(["train", *command, "--no-progress"])
    measured = probe(train_args, args.warmup, args.probe_steps)
    steps = plan_steps(budget - (time.perf_counter() - wall_start), measured, args.points, args.margin)
    print(f"probe: {1000 * measured['step_s']:.1f} ms/step, {measured['eval_s']:.1f} s/evaluation -> {steps} steps",
          flush=True)

    run_start = time.perf_counter()
    config = config_from_args(train_args)
    config.steps, config.out = steps, os.path.join(args.out, "run")
    config.eval_every = -(-steps // args.points)  # the last evaluation is the final step
    trainer = Trainer(config)
    setup = time.perf_counter() - run_start
    trainer.fit()
    curve = [{"step": r["step"], "planned_steps": steps, "wall_s": round(setup + r["wall_s"], 2), **accuracies(r),
              "train": r.get("train", {})} for r in trainer.history]
    with open(os.path.join(args.out, "curve.jsonl"), "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in curve)
    for row in curve:
        print(json.dumps({k: v for k, v in row.items() if k != "train"}))
    device = measured["device"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    summary = {"command": "python bench/time_to_accuracy.py " + " ".join(sys.argv[1:]), "device": name,
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "budget_s": budget,
               "probe_ms_per_step": round(1000 * measured["step_s"], 2), "steps": steps,
               "wall_s": round(time.perf_counter() - wall_start, 1), "final": accuracies(curve[-1])}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    plot(curve, os.path.join(args.out, "curve.png"), f"{config.method}, {steps} steps in {args.minutes:g} min, {name}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
