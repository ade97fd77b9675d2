"""digits (scikit-learn, 8x8) with 5 labels per class: every mentor method next to scikit-learn's
LabelSpreading and SelfTrainingClassifier, on the same seeded splits.

    python bench/digits.py --seeds 0 1 2 3 4 [--steps 2000] [--methods ...]

For each seed: mentor's digits loader (a seeded, stratified 75/25 train/test split) and
mentor's balanced split of 50 labels; the unlabeled pool is the whole training set. The
scikit-learn estimators get the same arrays with y = -1 on unlabeled rows. Results are
appended to bench/results/digits.jsonl and printed as a markdown table (mean +- std of the
test accuracy over seeds). Settings are fixed before seeing any test accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from mentor.data import load_dataset, make_split
from mentor.methods import list_methods
from mentor.train import TrainConfig, train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "digits.jsonl")
COMMON = dict(dataset="digits", num_labeled=50, model="mlp", model_options={"hidden": [128]}, batch_size=50,
              unlabeled_batch_size=256, optimizer="nesterov", lr=0.03, weight_decay=5e-4, schedule="cosine",
              eval_every=0, input_noise=0.05, strong_noise=0.15, device="cpu", progress=False)
# Each method's own settings where its default does not suit 50 labels on 8x8 features:
# MPL starts its student after 10% of the steps and uses cosine feedback (appendix C.3).
METHOD_OPTIONS = {"meta_pseudo_labels": {"feedback": "cosine", "student_wait_steps": 200},
                  "vat": {"epsilon": 1.0}}


def sklearn_baselines(x_train, y_train, labeled, x_test, y_test, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    y_partial = np.full(len(y_train), -1)
    y_partial[labeled] = y_train[labeled]
    out = {}
    spreading = LabelSpreading(kernel="knn", n_neighbors=7, alpha=0.2, max_iter=100).fit(x_train, y_partial)
    out["sklearn LabelSpreading (knn, 7)"] = float((spreading.predict(x_test) == y_test).mean())
    self_training = SelfTrainingClassifier(LogisticRegression(max_iter=2000, random_state=seed), threshold=0.9)
    self_training.fit(x_train, y_partial)
    out["sklearn SelfTrainingClassifier (logistic, 0.9)"] = float((self_training.predict(x_test) == y_test).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--methods", nargs="+", default=list_methods())
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    rows = []
    for seed in args.seeds:
        ds = load_dataset("digits", seed=seed)
        split = make_split(ds.y_train, 50, 10, seed)
        for name, acc in sklearn_baselines(ds.x_train, ds.y_train, split.labeled, ds.x_test, ds.y_test, seed).items():
            rows.append({"method": name, "seed": seed, "test_accuracy": acc, "seconds": 0.0})
        for method in args.methods:
            started = time.perf_counter()
            summary = train(TrainConfig(method=method, steps=args.steps, seed=seed,
                                        method_options=METHOD_OPTIONS.get(method, {}), **COMMON))
            assert summary["num_labeled"] == 50
            seconds = round(time.perf_counter() - started, 1)
            rows.append({"method": method, "seed": seed, "test_accuracy": summary["final_test_accuracy"],
                         "seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
            if "final_teacher_test_accuracy" in summary:  # MT, ICT (EMA teachers), MPL, Pseudo Labels
                rows.append({"method": f"{method} (its teacher)", "seed": seed,
                             "test_accuracy": summary["final_teacher_test_accuracy"], "seconds": seconds})
    stamp = {"date": time.strftime("%Y-%m-%d"), "steps": args.steps, "settings": COMMON, "options": METHOD_OPTIONS}
    with open(RESULTS, "a") as f:
        for row in rows:
            f.write(json.dumps({**row, **stamp}) + "\n")
    print(f"| method | test accuracy (mean ± std over {len(args.seeds)} seeds) | s / run |\n| --- | --- | --- |")
    for method in dict.fromkeys(r["method"] for r in rows):
        accs = [100 * r["test_accuracy"] for r in rows if r["method"] == method]
        secs = statistics.mean(r["seconds"] for r in rows if r["method"] == method)
        print(f"| {method} | {statistics.mean(accs):.2f} ± {statistics.stdev(accs) if len(accs) > 1 else 0:.2f} "
              f"| {secs:.1f} |")


if __name__ == "__main__":
    main()
