"""What `mentor compare --fit-best` delivers on the benchmark problems, beside AutoGluon, and which
choice rule regrets least.

    python bench/fit_best.py run digits-s0 wine-s0 ... [--jobs 2]   # each problem: one mentor compare
    python bench/fit_best.py rules                                   # the rules' regrets over every problem run
    python bench/fit_best.py summary                                 # every entry's test accuracy and time
    python bench/fit_best.py deliver [PROBLEM ...]                   # --deliver refit against bag
    python bench/fit_best.py trees [PROBLEM ...]                     # the forests at 100 and 300 trees

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
  under bench/.fmnist-table from /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist);
- kernlab's tables spam, musk, ticdata and promotergene (Debian's r-cran-kernlab, read with PyPI's
  rdata) at 10 labels a class, the other rows unlabeled but a seeded labeled test file (made once
  under bench/.kernlab).

`rules` reads every problem's compare.json (and those of bench/compare.py's fmnist1000-noaug and
mismatch study, each of whose settings counts, where they were run) and gives, for each choice rule of
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
import json
import os
import statistics
import sys
import time

import numpy as np

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


KERNLAB = "/usr/lib/R/site-library/kernlab/data"
# name -> (the data set's target column, test rows held out): 10 labels a class, the rest unlabeled
KERNLAB_TABLES = {"spam": ("type", 1000), "musk": ("Class", 150), "ticdata": ("CARAVAN", 2000),
                  "promotergene": ("Class", 40)}


def kernlab_table(name: str, per_class: int = 10) -> list:
    """One of kernlab's tables (Debian's r-cran-kernlab, read with rdata) as a user's CSVs: a seeded
    ``per_class`` labels a class, the other training rows unlabeled, and a labeled test file.
    Categorical columns are one-hot encoded (promotergene's bases; ticdata's coded factors as
    their codes, since they are ordered levels)."""
    import pandas as pd
    import rdata

    target, n_test = KERNLAB_TABLES[name]
    folder = os.path.join("bench", ".kernlab", name)
    train, test = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
    if not os.path.exists(test):
        frame = rdata.read_rda(os.path.join(KERNLAB, f"{name}.rda"))[name]
        y = frame.pop(target).astype(str).to_numpy()
        nominal = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)
                   and not frame[c].cat.ordered and not pd.api.types.is_numeric_dtype(frame[c].cat.categories)]
        frame = pd.get_dummies(frame, columns=nominal, dtype=float)
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].cat.codes
        frame.columns = [f"f{i}" for i in range(frame.shape[1])]
        x = frame.astype(float).to_numpy()
        rng = np.random.default_rng(0)
        order = rng.permutation(len(y))
        held, rest = order[:n_test], order[n_test:]
        labeled = np.concatenate([rng.choice(rest[y[rest] == c], per_class, replace=False) for c in np.unique(y)])
        unlabeled = np.setdiff1d(rest, labeled)
        os.makedirs(folder, exist_ok=True)
        header = ",".join([*frame.columns, "label"])

        def write(path, rows, with_labels):
            with open(path + ".tmp", "w") as f:
                f.write(header + "\n")
                for i in rows:
                    f.write(",".join(f"{v:g}" for v in x[i]) + f",{y[i] if with_labels(i) else ''}\n")
            os.replace(path + ".tmp", path)

        keep = set(labeled.tolist())
        write(train, np.concatenate([labeled, unlabeled]), lambda i: i in keep)
        write(test, held, lambda i: True)
    return ["--dataset", "table", "--data-path", train, "--target", "label", "--test-path", test]


PROBLEMS = {
    **{f"digits-s{s}": (lambda s=s: ["--dataset", "digits", "--num-labeled", "50", "--seed", str(s)]) for s in range(3)},
    **{f"wine-s{s}": (lambda s=s: ["--dataset", "wine", "--num-labeled", "15", "--seed", str(s)]) for s in range(3)},
    **{f"breast_cancer-s{s}": (lambda s=s: ["--dataset", "breast_cancer", "--num-labeled", "20", "--seed", str(s)])
       for s in range(3)},
    "sst2-20": lambda: sst2(20),
    "sst2-100": lambda: sst2(100),
    "fmnist-table": fashion_table,
    **{f"{name}-10": (lambda name=name: kernlab_table(name)) for name in KERNLAB_TABLES},
}


def run(problem: str, jobs: int) -> str:
    from compare import record, resume_flag

    out = os.path.join(RUNS, problem)
    text = record(["compare", *PROBLEMS[problem](), *entries(), "--fit-best", "--out", out, "--jobs", str(jobs),
                   *resume_flag(out), "--no-progress"])
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{problem}.md"), "w") as f:
        f.write(text)
    return text


# Comparisons of bench/compare.py whose tables count too: the studies' settings and the image problem
STUDIES = {"fmnist1000-noaug": os.path.join("bench", "runs", "compare", "fmnist1000-noaug", "compare.json"),
           "mismatch": os.path.join("bench", "runs", "compare", "mismatch", "compare.json")}


def comparisons():
    """(name, compare.json) of every problem run here, then of the studies run by bench/compare.py."""
    for problem in PROBLEMS:
        path = os.path.join(RUNS, problem, "compare.json")
        if os.path.exists(path):
            yield problem, path
    for name, path in STUDIES.items():
        if os.path.exists(path):
            yield name, path


def bagged_test(result: dict, label: str, setting: str = "all"):
    """Test accuracy of an entry's fold models averaged (seed by seed, then over seeds): the
    alternative to refitting the choice on every label, read from its cells' predictions."""
    from mentor.compare.cells import read_predictions

    by_seed = {}
    for record in result["cells"]:
        if record["label"] == label and record["setting"] == setting:
            p = read_predictions(os.path.join(result["out"], "cells", record["cell"]))
            if "test_proba" not in p:
                return None
            by_seed.setdefault(record["seed"], []).append(p)
    accuracies = [float(np.mean(np.mean([p["test_proba"] for p in parts], axis=0).argmax(1) == parts[0]["test_true"]))
                  for parts in by_seed.values()]
    return statistics.mean(accuracies) if accuracies else None


def rules() -> str:
    """Two tables: each rule's choice and regret as compare computes it (each entry's test figure is
    the mean over its fold models), and the same rules judged on what they deliver alike: every
    single entry as its fold models averaged (a bag, as the ensemble is), so that the ensemble is
    not favoured by being the only bag."""
    from mentor.compare.stats import CHOICE_RULES

    header = ["problem", "held-out labels", *[f"{rule}: choice, regret" for rule in CHOICE_RULES],
              "ensemble optimism", "AutoGluon test", "--fit-best delivered (default rule): test"]
    bag_header = ["problem", *[f"{rule}: bag regret" for rule in CHOICE_RULES], "best bag on test",
                  "validation's choice: refit on every label / its bag"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    bag_lines = ["| " + " | ".join(bag_header) + " |", "|" + " --- |" * len(bag_header)]
    regrets = {rule: [] for rule in CHOICE_RULES}
    bag_regrets = {rule: [] for rule in CHOICE_RULES}
    for name, path in comparisons():
        with open(path) as f:
            result = json.load(f)
        for setting, table in result["tables"].items():
            if "rule_regrets" not in table:  # no test split, or made before the rules
                continue
            title = name if len(result["tables"]) == 1 else f"{name}: {setting}"
            cells = [title, str(table["resolution"]["units"])]
            for rule in CHOICE_RULES:
                regrets[rule].append(table["rule_regrets"][rule])
                cells.append(f"{table['rule_choices'][rule]} {100 * table['rule_regrets'][rule]:.1f}")
            optimism = (table.get("ensemble") or {}).get("optimism")
            cells.append(f"{100 * optimism['optimism']:+.1f}" if optimism else "–")
            ag = next((r for r in table["rows"] if r.get("kind") == "reference" and "test_accuracy" in r), None)
            cells.append(f"{100 * ag['test_accuracy']:.1f}" if ag else "–")
            best = result.get("best") or {}
            cells.append(f"{best.get('label')} ({best.get('kind')}) {100 * best['test_accuracy']:.1f}"
                         if best.get("test_accuracy") is not None and setting == "all" else "–")
            lines.append("| " + " | ".join(cells) + " |")
            # the same rules, every deliverable entry judged as its fold models averaged
            bags = {r["label"]: (r.get("test_accuracy") if r.get("kind") == "ensemble" else
                                 bagged_test(result, r["label"], setting))
                    for r in table["rows"] if r.get("kind") != "reference"}
            bags = {k: v for k, v in bags.items() if v is not None}
            top = max(bags, key=bags.get)
            row = [title]
            for rule in CHOICE_RULES:
                regret = bags[top] - bags[table["rule_choices"][rule]]
                bag_regrets[rule].append(regret)
                row.append(f"{table['rule_choices'][rule]} {100 * regret:.1f}")
            row.append(f"{top} {100 * bags[top]:.1f}")
            chosen = table["rule_choices"]["validation"]
            refit = best.get("test_accuracy") if best.get("label") == chosen and setting == "all" else None
            row.append(f"{chosen}: {f'{100 * refit:.1f}' if refit is not None else '–'} / {100 * bags[chosen]:.1f}")
            bag_lines.append("| " + " | ".join(row) + " |")
    lines.append("| **mean regret** | | " + " | ".join(
        f"**{100 * statistics.mean(v):.2f}**" if v else "–" for v in regrets.values()) + " | | | |")
    bag_lines.append("| **mean bag regret** | " + " | ".join(
        f"**{100 * statistics.mean(v):.2f}**" if v else "–" for v in bag_regrets.values()) + " | | |")
    text = "\n".join(lines) + "\n\nJudged alike (every entry as its fold models averaged):\n\n" + "\n".join(bag_lines)
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "rules.md"), "w") as f:
        f.write(f"{time.strftime('%Y-%m-%d')}, `python bench/fit_best.py rules`\n\n{text}\n")
    return text


def summary() -> str:
    """Per problem: the test accuracy (mean over fold models; the ensemble as delivered) and the
    seconds per cell of every entry, and what --fit-best delivered, for BENCHMARKS.md."""
    results = {name: json.load(open(path)) for name, path in comparisons() if name in PROBLEMS}
    labels = list(dict.fromkeys(r["label"] for result in results.values() for r in result["tables"]["all"]["rows"]))
    header = ["entry", *results]
    acc = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    secs = list(acc)
    for label in labels:
        a, t = [label.split(":")[0]], [label.split(":")[0]]
        for result in results.values():
            row = next((r for r in result["tables"]["all"]["rows"] if r["label"] == label), {})
            a.append(f"{100 * row['test_accuracy']:.1f}" if "test_accuracy" in row else "–")
            t.append(f"{row['seconds_per_cell']:.1f}" if "seconds_per_cell" in row else "–")
        acc.append("| " + " | ".join(a) + " |")
        secs.append("| " + " | ".join(t) + " |")
    walls = "| wall (s) | " + " | ".join(f"{r['seconds']:.0f}" for r in results.values()) + " |"
    text = ("Test accuracy (mean over the fold models; the ensemble: as delivered):\n\n" + "\n".join(acc) +
            "\n\nSeconds per cell (2 jobs on 2 cores; the ensemble: its members' seconds, no training of its own):\n\n"
            + "\n".join(secs + [walls]))
    print(text)
    with open(os.path.join(RESULTS, "summary.md"), "w") as f:
        f.write(f"{time.strftime('%Y-%m-%d')}, `python bench/fit_best.py summary`\n\n{text}\n")
    return text


def deliveries(problems) -> str:
    """Refit against bag, for the ensemble (rule ensemble) and for the best single entry on
    validation (rule validation): each delivered with --fit-best --deliver refit and bag into the
    comparison's folder (its cells are kept: only the delivery runs), its test accuracy read back."""
    from compare import record

    header = ["problem", "ensemble: refit", "ensemble: bag", "single entry", "single: refit", "single: bag"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    wins = {"ensemble": [], "single": []}
    measured = os.path.join(RESULTS, "deliver.json")
    table = json.load(open(measured)) if os.path.exists(measured) else {}
    for problem in problems:
        out = os.path.join(RUNS, problem)
        if not os.path.exists(os.path.join(out, "compare.json")):
            continue
        figures = {}
        for rule, kind in (("ensemble", "ensemble"), ("validation", "single")):
            for how in ("refit", "bag"):
                record(["compare", *PROBLEMS[problem](), *entries(), "--fit-best", "--deliver", how, "--choice-rule",
                        rule, "--out", out, "--jobs", "2", "--resume", "--no-progress"])
                result = json.load(open(os.path.join(out, "compare.json")))
                figures[f"{kind} {how}"] = result["best"]["test_accuracy"]
                figures[f"{kind} label"] = result["best"]["label"]
        table[problem] = figures
        with open(measured, "w") as f:
            json.dump(table, f, indent=1)
        # leave the comparison's own delivery (the default rule and deliveries) in OUT/best again
        record(["compare", *PROBLEMS[problem](), *entries(), "--fit-best", "--out", out, "--jobs", "2", "--resume",
                "--no-progress"])
    for problem in [p for p in PROBLEMS if p in table]:
        figures = table[problem]
        single = figures["single label"]
        for kind in ("ensemble", "single"):
            wins[kind].append(figures[f"{kind} refit"] - figures[f"{kind} bag"])
        lines.append(f"| {problem} | {100 * figures['ensemble refit']:.1f} | {100 * figures['ensemble bag']:.1f} "
                     f"| {single} | {100 * figures['single refit']:.1f} | {100 * figures['single bag']:.1f} |")
    lines.append("| **mean refit - bag** | " + " | ".join(
        [f"**{100 * statistics.mean(wins['ensemble']):+.2f}**" if wins["ensemble"] else "–", "", "",
         f"**{100 * statistics.mean(wins['single']):+.2f}**" if wins["single"] else "–", ""]) + " |")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(RESULTS, "deliver.md"), "w") as f:
        f.write(f"{time.strftime('%Y-%m-%d')}, `python bench/fit_best.py deliver`\n\n{text}\n")
    return text


FORESTS = ["random_forest", "extra_trees", "random_forest:n_estimators=300", "extra_trees:n_estimators=300"]


def trees(problems, jobs: int = 2) -> str:
    """The forests at 100 and 300 trees on every problem's splits: validation (5 folds) and test."""
    from compare import record, resume_flag

    header = ["problem", *[f"{f.split(':')[0]} {300 if ':' in f else 100} trees: val / test" for f in FORESTS]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    gains = {"val": [], "test": []}
    for problem in problems:
        out = os.path.join(RUNS, f"trees-{problem}")
        record(["compare", *PROBLEMS[problem](), "--methods", "supervised", *FORESTS, "--out", out, "--jobs", str(jobs),
                *resume_flag(out), "--no-progress"])
    for problem in PROBLEMS:  # the table: every problem with a run, those of earlier invocations too
        path = os.path.join(RUNS, f"trees-{problem}", "compare.json")
        if not os.path.exists(path):
            continue
        rows = {r["label"]: r for r in json.load(open(path))["tables"]["all"]["rows"]}
        cells = [problem]
        for forest in FORESTS:
            cells.append(f"{100 * rows[forest]['val']['accuracy']:.1f} / {100 * rows[forest]['test_accuracy']:.1f}")
        for small, large in zip(FORESTS[:2], FORESTS[2:]):
            gains["val"].append(rows[large]["val"]["accuracy"] - rows[small]["val"]["accuracy"])
            gains["test"].append(rows[large]["test_accuracy"] - rows[small]["test_accuracy"])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"| **mean 300 - 100** | validation {100 * statistics.mean(gains['val']):+.2f}, "
                 f"test {100 * statistics.mean(gains['test']):+.2f} (both forests) | | | |")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(RESULTS, "trees.md"), "w") as f:
        f.write(f"{time.strftime('%Y-%m-%d')}, `python bench/fit_best.py trees`\n\n{text}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["run", "rules", "summary", "deliver", "trees"])
    parser.add_argument("problems", nargs="*", help=f"default: every problem ({', '.join(PROBLEMS)})")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    os.chdir(ROOT)
    if args.what in ("rules", "summary"):
        (rules if args.what == "rules" else summary)()
        return
    os.makedirs(RESULTS, exist_ok=True)
    unknown = [p for p in args.problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(PROBLEMS)}")
    problems = args.problems or list(PROBLEMS)
    if args.what == "deliver":
        deliveries(problems)
    elif args.what == "trees":
        trees(problems, args.jobs)
    else:
        for problem in problems:
            run(problem, args.jobs)


if __name__ == "__main__":
    main()
