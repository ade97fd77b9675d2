"""Seconds per training step of a method, measured through the real trainer (augmentation included).

    python bench/step_time.py --preset fixmatch-cifar10 --data-path cifar10-jpeg.tar.gz --device cuda
    python bench/step_time.py --preset mpl-cifar10 --data-path cifar10-jpeg.tar.gz --device cuda
    python bench/step_time.py --method fixmatch --dataset fashion_mnist --model small_cnn \
        --batch-size 32 --unlabeled-batch-size 224 --device cpu

Builds the trainer exactly as `mentor train` would (a preset, then the flags given; --capture
included), runs --warmup steps (compilation, cuDNN autotuning, CUDA-graph recording), then
times --steps of the trainer's own step (method step, schedules, EMA; Trainer.train_step) with
the device synchronised only around them, and prints the milliseconds per step with the
command, device and date.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from mentor.cli import build_parser, config_from_args
from mentor.train import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", dest="timed_steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args, rest = parser.parse_known_args()
    train_args = build_parser().parse_args(["train", *rest, "--no-progress", "--eval-every", "0"])
    config = config_from_args(train_args)
    trainer = Trainer(config)
    device = trainer.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    method = trainer.method
    # Phases that idle part of the method (MPL's student wait) would flatter the figure: skip them.
    if hasattr(method, "student_wait_steps"):
        method.student_wait_steps = 0
    for _ in range(args.warmup):
        trainer.train_step()
    sync()
    started = time.perf_counter()
    for _ in range(args.timed_steps):
        trainer.train_step()
    sync()
    ms = 1000 * (time.perf_counter() - started) / args.timed_steps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(json.dumps({"method": config.method, "model": config.model, "dataset": config.dataset,
                      "batch": [config.batch_size, config.unlabeled_batch_size], "ms_per_step": round(ms, 2),
                      "device": name, "precision": "bf16" if method.amp else "fp32",
                      "channels_last": trainer.channels_last, "compile": config.compile, "capture": config.capture,
                      "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
                      "command": "python bench/step_time.py " + " ".join(rest)}, indent=2))


if __name__ == "__main__":
    main()
