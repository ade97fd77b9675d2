"""The ``mentor`` command: methods, train, eval, demo."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from .errors import ConfigError, MentorError


def parse_value(text: str):
    """'0.1' -> 0.1, 'true' -> True, 'none' -> None, '8,8' -> [8, 8], anything else -> str."""
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: Optional[List[str]], flag: str) -> dict:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = parse_value(value)
    return options


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    p.add_argument("--method", default=d.method, help="see `mentor methods`")
    p.add_argument("--dataset", default=d.dataset, help="two_moons, digits or npz")
    p.add_argument("--data-path", default=None, help="file for --dataset npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--num-labeled", type=int, default=d.num_labeled, help="labeled examples, balanced over classes")
    p.add_argument("--unlabeled-pool", choices=("all", "rest"), default=d.unlabeled_pool,
                   help="unlabeled data: every training example (papers' default) or those not labeled")
    p.add_argument("--model", default=d.model)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--out", default=None, help="run folder: metrics.jsonl, summary.json, split.json, checkpoint.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-seed", type=int, default=None, help="seed of the labeled split (default: --seed)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="labeled examples per step")
    p.add_argument("--unlabeled-batch-size", type=int, default=d.unlabeled_batch_size)
    p.add_argument("--optimizer", choices=("sgd", "nesterov", "adam"), default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=("constant", "cosine"), default=d.schedule)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--ema-decay", type=float, default=None, help="evaluate an EMA copy too (e.g. 0.999)")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between evaluations/checkpoints")
    p.add_argument("--strong-noise", type=float, default=None,
                   help="std of a Gaussian-noise strong view of unlabeled inputs (enables UDA in MPL's teacher)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="method hyper-parameters, e.g. feedback=cosine")
    p.add_argument("--model-hp", nargs="*", metavar="KEY=VALUE", help="model options, e.g. hidden=8,8")
    p.add_argument("--data-hp", nargs="*", metavar="KEY=VALUE", help="dataset options, e.g. noise=0.1")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_methods(args) -> int:
    from .registry import METHODS

    for name in METHODS.names():
        doc = (sys.modules[METHODS.get(name).__module__].__doc__ or "").strip()
        print(f"{name:22s} {doc.splitlines()[0] if doc else ''}")
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        method=args.method, dataset=args.dataset, data_path=args.data_path,
        dataset_options=parse_options(args.data_hp, "--data-hp"), num_labeled=args.num_labeled,
        unlabeled_pool=args.unlabeled_pool, model=args.model,
        model_options=parse_options(args.model_hp, "--model-hp"),
        method_options=parse_options(args.hp, "--hp"), steps=args.steps, batch_size=args.batch_size,
        unlabeled_batch_size=args.unlabeled_batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_steps=args.warmup_steps, ema_decay=args.ema_decay, eval_every=args.eval_every,
        strong_noise=args.strong_noise, seed=args.seed, split_seed=args.split_seed, device=args.device,
        out=args.out, progress=not args.no_progress,
    )
    summary = train(config, resume=args.resume)
    keys = ("method", "dataset", "final_test_accuracy", "final_ema_test_accuracy", "steps", "wall_seconds",
            "seconds_per_step")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from .train import load_run

    trainer = load_run(args.run_dir, device=args.device)
    print(json.dumps({"step": trainer.step, **trainer.evaluate()}, indent=2))
    return 0


def cmd_demo(args) -> int:
    from .experiments.two_moons import run_demo

    run_demo(seeds=args.seeds, out=args.out, workers=args.workers, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mentor", description="Semi-supervised learning with teacher-student methods.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="list the registered methods").set_defaults(func=cmd_methods)
    p = sub.add_parser("train", help="train one method on one dataset")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="re-evaluate a run folder's checkpoint on its test split")
    p.add_argument("run_dir")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("demo", help="the MPL TwoMoon experiment (paper section 3.1)")
    p.add_argument("--seeds", type=int, default=10, help="datasets / runs per method")
    p.add_argument("--out", default="demo_out", help="folder for two_moons.png and two_moons.json")
    p.add_argument("--workers", type=int, default=2, help="processes running seeds in parallel")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MentorError as exc:
        print(f"mentor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mentor: interrupted; a run with --out can be continued with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
