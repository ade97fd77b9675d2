"""How close `mentor compare`'s time estimate (the plan line: "about N s with J job(s)") comes to the
time the comparison then takes, on the demo and two other problems.

    python bench/compare_estimate.py            # all three, from scratch, into bench/runs/compare_estimate
    python bench/compare_estimate.py demo       # one of them

Problems: the demo (digits, 50 labels, seeds 0 and 1, 600 steps, 2 jobs: `mentor demo`'s
comparison); wine with 15 labels (every default entry, 300 steps, 1 job); digits with 200 labels
and three methods (1,000 steps, 2 jobs). Each runs from an empty folder; compare.json keeps the
estimate (``estimated_seconds``) beside the wall time of its cells (``seconds``). The ratio
wall / estimate is printed with the machine and the date, for BENCHMARKS.md.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time

from mentor.compare import compare
from mentor.experiments.compare_demo import DEMO, DEMO_SEEDS
from mentor.train import TrainConfig

OUT = os.path.join(os.path.dirname(__file__), "runs", "compare_estimate")
PROBLEMS = {
    "demo": dict(config=dict(DEMO, device="cpu"), seeds=DEMO_SEEDS, jobs=2, methods=None),
    "wine-15": dict(config=dict(dataset="wine", num_labeled=15, steps=300, eval_every=100, device="cpu"),
                    seeds=(0,), jobs=1, methods=None),
    "digits-200": dict(config=dict(dataset="digits", num_labeled=200, steps=1000, eval_every=250, device="cpu"),
                       seeds=(0,), jobs=2, methods=["supervised", "fixmatch", "meta_pseudo_labels"]),
}


def main(names) -> None:
    print(f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| problem | jobs | estimate (s) | taken (s) | taken / estimate |")
    print("| --- | --- | --- | --- | --- |")
    for name in names or PROBLEMS:
        problem = PROBLEMS[name]
        out = os.path.join(OUT, name)
        shutil.rmtree(out, ignore_errors=True)
        result = compare(TrainConfig(**problem["config"]), methods=problem["methods"], seeds=problem["seeds"],
                         out=out, jobs=problem["jobs"], progress=False)
        estimate, taken = result["estimated_seconds"], result["seconds"]
        print(f"| {name} | {problem['jobs']} | {estimate:.0f} | {taken:.0f} | {taken / estimate:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
