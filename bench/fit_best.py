"""What `mentor compare --fit-best` delivers on the benchmark problems, beside AutoGluon, and which
choice rule regrets least.

    python bench/fit_best.py run digits-s0 wine-s0 ... [--jobs 2]   # each problem: one mentor compare
    python bench/fit_best.py rules                                   # the rules' regrets over every problem run

Each problem is one `mentor compare` with every default entry (DEFAULT_METHODS and
DEFAULT_BASELINES), the `autogluon` entry (AutoGluon-Tabular, medium_quality, 60 s per cell,
fit_pseudolabel on the cell's unlabeled rows; run it from an environment with
`pip install 'mentor[autogluon]'`), the ensemble entry compare adds, and --fit-best, run with
--resume into bench/runs/fit_best/PROBLEM; its table, with the command, the machine and the date,
goes to bench/results/fit_best/PROBLEM.md. Problems:
- digits (50 labels), wine (15), breast_cancer (20), each with three label draws (seeds 0, 1, 2,
  one comparison each: each is one more choice to measure regret on);
- SST-2 sentence embeddings with 20 and 100 labels (bench/sst2.py's files, strong noise 0.3);
- a Fashion-MNIST table: 1,000 labeled rows (100 a class) and 10,000 unlabeled ones of the
  official training set, 784 pixel columns, the official test set as --test-path (made once
  under bench/.fmnist-table from /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist).

`rules` reads every problem's compare.json and gives, for each choice rule of
mentor.compare.stats.CHOICE_RULES, its regret on the test split (best test accuracy among the
deliverable entries minus the choice's), per problem and on average: the rule with the lowest
mean regret is compare's default (CHOICE_RULE). Beside them: the ensemble's optimism (its
validation figure with weights fitted on the held-out predictions, minus its figure with weights
fitted on one half of them and scored on the other), AutoGluon's test accuracy, and what
--fit-best delivered. Nothing here chooses on a test split: the rules choose on validation; the
test split only measures what each choice cost.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import statistics
import sys
import time
from contextlib import redirect_stdout

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join("bench", "runs", "fit_best")
RESULTS = os.path.join("bench", "results", "fit_best")
FMNIST = "/usr/share/datasets/fashion-mnist"
AUTOGLUON = "autogluon:presets=medium_quality:time_limit=60"


def entries() -> list:
    from mentor.compare import DEFAULT_BASELINES, DEFAULT_METHODS

    return ["--methods", *DEFAULT_METHODS, *DEFAULT_BASELINES, AUTOGLUON]


def sst2(labels: int) -> list:
    from sst2 import tsv

    return ["--dataset", "text", "--data-path", os.path.relpath(tsv("train")), "--test-path",
            os.path.relpath(tsv("test")), "--num-labeled", str(labels), "--strong-noise", "0.3"]


def fashion_table() -> list:
    """Fashion-MNIST as CSV tables: 1,000 labeled + 10,000 unlabeled training rows, the test set."""
    folder = os.path.join("bench", ".fmnist-table")
    train, test = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
    if not os.path.exists(test):
        def idx(name):
            with gzip.open(os.path.join(FMNIST, name)) as f:
                data = f.read()
            return np.frombuffer(data, np.uint8, offset=16 if "images" in name else 8)

        x = idx("train-images-idx3-ubyte.gz").reshape(-1, 784)
        y = idx("train-labels-idx1-ubyte.gz")
        rng = np.random.default_rng(0)
        labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 100, replace=False) for c in range(10)])
        rest = rng.permutation(np.setdiff1d(np.arange(len(y)), labeled))[:10_000]
        os.makedirs(folder, exist_ok=True)
        header = ",".join([f"p{i}" for i in range(784)] + ["label"])

        def write(path, rows, labels):
            with open(path + ".tmp", "w") as f:
                f.write(header + "\n")
                for row, label in zip(rows, labels):
                    f.write(",".join(map(str, row)) + f",{label}\n")
            os.replace(path + ".tmp", path)

        write(train, np.concatenate([x[labeled], x[rest]]),
              [str(v) for v in y[labeled]] + [""] * len(rest))
        write(test, idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784),
              [str(v) for v in idx("t10k-labels-idx1-ubyte.gz")])
    return ["--dataset", "table", "--data-path", train, "--target", "label", "--test-path", test]


PROBLEMS = {
    **{f"digits-s{s}": (lambda s=s: ["--dataset", "digits", "--num-labeled", "50", "--seed", str(s)]) for s in range(3)},
    **{f"wine-s{s}": (lambda s=s: ["--dataset", "wine", "--num-labeled", "15", "--seed", str(s)]) for s in range(3)},
    **{f"breast_cancer-s{s}": (lambda s=s: ["--dataset", "breast_cancer", "--num-labeled", "20", "--seed", str(s)])
       for s in range(3)},
    "sst2-20": lambda: sst2(20),
    "sst2-100": lambda: sst2(100),
    "fmnist-table": fashion_table,
}


def run(problem: str, jobs: int) -> str:
    from mentor.cli import main

    out = os.path.join(RUNS, problem)
    args = ["compare", *PROBLEMS[problem](), *entries(), "--fit-best", "--out", out, "--jobs", str(jobs),
            "--resume", "--no-progress"]
    started = time.perf_counter()
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(args)
    if code:
        sys.exit(code)
    command = "mentor " + " ".join(a if " " not in a else repr(a) for a in args)
    text = (f"`{command}`\n\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, this invocation "
            f"{time.perf_counter() - started:.0f} s (finished cells are kept, not retrained)\n\n{buffer.getvalue()}")
    print(text, flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{problem}.md"), "w") as f:
        f.write(text)
    return text


def rules() -> str:
    from mentor.compare.stats import CHOICE_RULES

    header = ["problem", "held-out labels", *[f"{rule}: choice, regret" for rule in CHOICE_RULES],
              "ensemble optimism", "AutoGluon test", "--fit-best delivered: test"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    regrets = {rule: [] for rule in CHOICE_RULES}
    for problem in PROBLEMS:
        path = os.path.join(RUNS, problem, "compare.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            result = json.load(f)
        table = result["tables"]["all"]
        cells = [problem, str(table["resolution"]["units"])]
        for rule in CHOICE_RULES:
            regrets[rule].append(table["rule_regrets"][rule])
            cells.append(f"{table['rule_choices'][rule]} {100 * table['rule_regrets'][rule]:.1f}")
        optimism = (table.get("ensemble") or {}).get("optimism")
        cells.append(f"{100 * optimism['optimism']:+.1f}" if optimism else "–")
        ag = next((r for r in table["rows"] if r.get("kind") == "reference" and "test_accuracy" in r), None)
        cells.append(f"{100 * ag['test_accuracy']:.1f}" if ag else "–")
        best = result.get("best") or {}
        cells.append(f"{best.get('label')} ({best.get('kind')}) {100 * best['test_accuracy']:.1f}"
                     if best.get("test_accuracy") is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    means = [f"**{100 * statistics.mean(v):.2f}**" if v else "–" for v in regrets.values()]
    lines.append("| **mean regret** | | " + " | ".join(means) + " | | | |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "rules.md"), "w") as f:
        f.write(f"{time.strftime('%Y-%m-%d')}, `python bench/fit_best.py rules`\n\n{text}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["run", "rules"])
    parser.add_argument("problems", nargs="*", help=f"default: every problem ({', '.join(PROBLEMS)})")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    os.chdir(ROOT)
    if args.what == "rules":
        rules()
        return
    unknown = [p for p in args.problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(PROBLEMS)}")
    for problem in args.problems or list(PROBLEMS):
        run(problem, args.jobs)


if __name__ == "__main__":
    main()
