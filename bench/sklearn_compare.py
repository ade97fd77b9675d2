"""SemiSupervisedClassifier next to scikit-learn's semi-supervised estimators, on the same splits.

    python bench/sklearn_compare.py --seeds 0 1 2 [--problems digits wine breast_cancer] [--steps 3000]

Per problem and seed, the labeled rows are the ones `mentor train --dataset D --num-labeled N
--seed K` labels (digits 50, wine 15, breast_cancer 20), every other training row has y = -1,
and every estimator is fitted on the same (X, y) and scored on the dataset's test split:
- scikit-learn: LabelSpreading (kNN kernel, k = 7, its defaults), SelfTrainingClassifier
  around LogisticRegression (threshold 0.75, its default), and LogisticRegression on the
  labeled rows alone (the supervised reference of that family);
- mentor.SemiSupervisedClassifier with its defaults and --steps: method="supervised" (the
  labeled rows alone), "fixmatch" and "meta_pseudo_labels".
Settings are fixed before any result (each library's defaults). Rows go to
bench/results/sklearn_compare.jsonl; the table is printed for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from fashion_mnist import prepare, record_result
from mentor import SemiSupervisedClassifier
from mentor.data import load_dataset, make_split

RESULTS = os.path.join(os.path.dirname(__file__), "results", "sklearn_compare.jsonl")
PROBLEMS = {"digits": 50, "wine": 15, "breast_cancer": 20}


def estimators(steps: int, seed: int) -> dict:
    return {
        "sklearn LogisticRegression (labeled rows only)": "supervised-sklearn",
        "sklearn LabelSpreading (knn)": LabelSpreading(kernel="knn"),
        "sklearn SelfTrainingClassifier(LogisticRegression)": SelfTrainingClassifier(LogisticRegression(max_iter=1000)),
        "mentor supervised": SemiSupervisedClassifier(method="supervised", steps=steps, random_state=seed),
        "mentor fixmatch": SemiSupervisedClassifier(method="fixmatch", steps=steps, random_state=seed),
        "mentor meta_pseudo_labels": SemiSupervisedClassifier(method="meta_pseudo_labels", steps=steps,
                                                             random_state=seed),
    }


def run(problem: str, seed: int, steps: int) -> list:
    ds = load_dataset(problem, seed=seed)
    split = make_split(ds.y_train, PROBLEMS[problem], ds.num_classes, seed, unlabeled_pool="rest")
    y = np.full(len(ds.y_train), -1)
    y[split.labeled] = ds.y_train[split.labeled]
    rows = []
    for label, estimator in estimators(steps, seed).items():
        started = time.perf_counter()
        if estimator == "supervised-sklearn":
            estimator = LogisticRegression(max_iter=1000).fit(ds.x_train[split.labeled], y[split.labeled])
        else:
            estimator.fit(ds.x_train, y)
        rows.append({"problem": problem, "seed": seed, "steps": steps, "label": label,
                     "accuracy": float(estimator.score(ds.x_test, ds.y_test)),
                     "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads(),
                     "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=sorted(PROBLEMS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    done = prepare(args, RESULTS)
    for problem in args.problems:
        for seed in args.seeds:
            if any(r["problem"] == problem and r["seed"] == seed and r["steps"] == args.steps for r in done):
                continue
            for row in run(problem, seed, args.steps):
                record_result(RESULTS, row)
                done.append(row)
    print(f"\n{args.steps} mentor steps, seeds {args.seeds}: test accuracy (mean ± std over seeds)")
    labels = list(estimators(args.steps, 0))
    print("| estimator | " + " | ".join(args.problems) + " |\n| --- |" + " --- |" * len(args.problems))
    for label in labels:
        cells = []
        for problem in args.problems:
            acc = [100 * r["accuracy"] for r in done if r["problem"] == problem and r["label"] == label
                   and r["steps"] == args.steps and r["seed"] in args.seeds]
            cells.append(f"{statistics.mean(acc):.2f} ± {statistics.stdev(acc) if len(acc) > 1 else 0:.2f}" if acc else "–")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
