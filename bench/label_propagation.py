"""Label Propagation (Iscen et al. 2019) against scikit-learn's LabelSpreading on digits.

    python bench/label_propagation.py --seeds 0 1 2 --steps 3000

Per seed, on the same split (digits, 50 labels, the plain command line's defaults):
- supervised: `mentor train --dataset digits --num-labeled 50 --steps S`;
- label_propagation: `mentor train --method label_propagation ...` (its test accuracy: the
  network trained on the propagated labels);
- LabelSpreading (scikit-learn, kNN kernel, k = 10, alpha = 0.2 defaults except the kernel)
  fitted on the labeled and unlabeled training examples, predicting the test split:
  (a) on the raw pixels, (b) on the features of the final label_propagation network (its
  classifier's input), i.e. the same features the method's last graph was built on.
Settings are fixed before any result (no tuning on the test split). Rows go to
bench/results/label_propagation.jsonl and the table is printed for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.semi_supervised import LabelSpreading

from fashion_mnist import prepare, record_result
from mpl import mean_std
from mentor.methods.label_propagation import embed
from mentor.train import TrainConfig, Trainer

RESULTS = os.path.join(os.path.dirname(__file__), "results", "label_propagation.jsonl")


def spreading_accuracy(x_l, y_l, x_u, x_test, y_test) -> float:
    model = LabelSpreading(kernel="knn", n_neighbors=10)
    model.fit(np.concatenate([x_l, x_u]), np.concatenate([y_l, -np.ones(len(x_u), dtype=int)]))
    return float((model.predict(x_test) == y_test).mean())


def run_seed(seed: int, steps: int) -> dict:
    started = time.perf_counter()
    accuracies = {}
    for method in ("supervised", "label_propagation"):
        config = TrainConfig(method=method, dataset="digits", num_labeled=50, steps=steps, seed=seed, eval_every=0,
                             device="cpu", progress=False)
        trainer = Trainer(config)
        trainer.fit()
        accuracies[method] = trainer.evaluate()["test_accuracy"]
    ds, split, method = trainer.dataset, trainer.split, trainer.method
    x_l, y_l = ds.x_train[split.labeled], ds.y_train[split.labeled]
    labeled = set(split.labeled)
    x_u = ds.x_train[[i for i in split.unlabeled if i < len(ds.x_train) and i not in labeled]]
    accuracies["LabelSpreading, pixels"] = spreading_accuracy(x_l, y_l, x_u, ds.x_test, ds.y_test)
    model, transform = method.models["model"], trainer.views.eval
    features = [embed(model, transform, torch.as_tensor(a)).numpy() for a in (x_l, x_u, ds.x_test)]
    accuracies["LabelSpreading, network features"] = spreading_accuracy(features[0], y_l, features[1], features[2],
                                                                        ds.y_test)
    return {"seed": seed, "steps": steps, **accuracies, "seconds": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    done = {(r["seed"], r["steps"]): r for r in prepare(args, RESULTS)}
    rows = []
    for seed in args.seeds:
        if (seed, args.steps) not in done:
            done[(seed, args.steps)] = run_seed(seed, args.steps)
            record_result(RESULTS, done[(seed, args.steps)])
        rows.append(done[(seed, args.steps)])
    print(f"\ndigits, 50 labels, {args.steps} steps, seeds {args.seeds}: test accuracy (mean ± std)")
    print("| model | test acc. |\n| --- | --- |")
    for key in ("supervised", "label_propagation", "LabelSpreading, pixels", "LabelSpreading, network features"):
        print(f"| {key} | {mean_std(r[key] for r in rows)} |")


if __name__ == "__main__":
    main()
