"""What makes the teacher's feedback matter on TwoMoon? (MPL section 3.1)

Runs named variants of the TwoMoon settings on seeds disjoint from the demo's (the demo
reports seeds 0..N-1; the ablation uses 1000..) so that choosing the demo's settings from
this table is not choosing them on the demo's own problems.

    python bench/two_moons_ablation.py --seeds 10 --steps 10000 [--only NAME ...]

Prints a markdown table (success rate, mean accuracy, seconds) and appends each row as JSON
to bench/results/two_moons_ablation.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

from dataclasses import replace as with_overrides  # a settings copy with some fields changed

from mentor.experiments.two_moons import TwoMoonSettings, run_many, summarise

MPL = "meta_pseudo_labels"


def variants(base: TwoMoonSettings, demo: TwoMoonSettings):
    """name -> (method, settings). The "demo settings" rows use `mentor demo`'s defaults
    (unlabeled minibatch 256, MPL student after half the steps) with --steps and --noise."""
    mpl = lambda **kw: with_overrides(base, mpl={"labels": "sample", "feedback": "dot",
                                                       "student_labeled_weight": 0.0, **kw})  # noqa: E731
    return {
        "supervised": ("supervised", base),
        "pseudo_label (argmax)": ("pseudo_label", base),
        "pseudo_label (sampled)": ("pseudo_label", with_overrides(base, pseudo_label={"labels": "sample"})),
        "mpl sample, no feedback (control)": (MPL, mpl(feedback="none")),
        "mpl sample dot": (MPL, mpl()),
        "mpl sample cosine": (MPL, mpl(feedback="cosine")),
        "mpl sample loss_diff": (MPL, mpl(feedback="loss_diff")),
        "mpl sample cosine baseline": (MPL, mpl(feedback="cosine", baseline_decay=0.99)),
        "mpl argmax dot": (MPL, mpl(labels="argmax")),
        "mpl argmax cosine": (MPL, mpl(labels="argmax", feedback="cosine")),
        "mpl soft dot (exact)": (MPL, mpl(labels="soft", feedback="expected")),
        "mpl soft cosine": (MPL, mpl(labels="soft", feedback="cosine")),
        "mpl sample dot, no teacher CE": (MPL, mpl(supervised_weight=0.0)),
        "mpl sample cosine, no teacher CE": (MPL, mpl(feedback="cosine", supervised_weight=0.0)),
        "mpl soft dot, no teacher CE": (MPL, mpl(labels="soft", feedback="expected", supervised_weight=0.0)),
        "mpl sample cosine + UDA": (MPL, with_overrides(mpl(feedback="cosine"), strong_noise=0.1)),
        "mpl sample dot + UDA": (MPL, with_overrides(mpl(), strong_noise=0.1)),
        "mpl sample, no feedback + UDA (control)": (MPL, with_overrides(mpl(feedback="none"), strong_noise=0.1)),
        "mpl sample cosine, minibatch 64": (MPL, with_overrides(mpl(feedback="cosine"), unlabeled_batch_size=64)),
        "demo settings: supervised": ("supervised", demo),
        "demo settings: pseudo_label": ("pseudo_label", demo),
        "demo settings: mpl": (MPL, demo),
        "demo settings: mpl cosine": (MPL, with_overrides(demo, mpl={"labels": "sample", "feedback": "cosine",
                                                                                  "student_labeled_weight": 0.0})),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", nargs="*", help="variant names, exactly as in the table")
    p.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "results", "two_moons_ablation.jsonl"))
    args = p.parse_args()
    # The ablation's base: full-batch unlabeled data, student from step 0 (Algorithm 1 as written).
    base = TwoMoonSettings(steps=args.steps, noise=args.noise, unlabeled_batch_size=2000, mpl_student_wait=0.0)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    print(f"| variant | steps | noise | success | mean acc | seconds |\n|---|---|---|---|---|---|")
    for name, (method, settings) in variants(base, TwoMoonSettings(steps=args.steps, noise=args.noise)).items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        row = summarise(run_many([method], seeds, settings, workers=args.workers, progress=False), [method])[method]
        seconds = time.perf_counter() - started
        print(f"| {name} | {args.steps} | {args.noise} | {row['success_rate']:.0%} | {row['mean_accuracy']:.3f} "
              f"| {seconds:.0f} |", flush=True)
        with open(args.results, "a") as f:
            f.write(json.dumps({"variant": name, "steps": args.steps, "noise": args.noise, "seeds": seeds,
                                **row, "seconds": round(seconds, 1), "machine": platform.node(),
                                "date": time.strftime("%Y-%m-%d")}) + "\n")


if __name__ == "__main__":
    main()
