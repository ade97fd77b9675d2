"""Why a pseudo-labelling run did not pay off: what its model says about the unlabeled pool.

    python bench/pseudo_label_diagnostics.py RUN [RUN ...] [--threshold 0.95]

For each finished run folder (a `mentor train` run or a `mentor compare` cell), the model labels
the run's own unlabeled pool (training examples whose labels training never saw; the test split is
not read) and prints, as one JSON line per run:
- ``pool_accuracy``: how often the pseudo-label (argmax) is the example's true label;
- ``confident``: the fraction of the pool with max probability >= ``--threshold``, and
  ``confident_accuracy``, the accuracy on that fraction (what FixMatch-style masks admit);
- ``marginal``: the class histogram of the pseudo-labels (uniform on balanced data: 1/C each), and
  ``marginal_tv``, its total-variation distance from the labeled set's class frequencies;
- ``per_class_recall``: the pseudo-labels' recall per class (a class that starves shows here);
- ``mask_rate`` over training, from the run's metrics (the fraction of the batch the rule trusted).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch


def diagnose(run: str, threshold: float) -> dict:
    from mentor.train import load_run

    trainer = load_run(run, device="cpu")
    split, ds = trainer.split, trainer.dataset
    pool = np.asarray(split.unlabeled)
    model = trainer.method.eval_model().eval()
    stored = torch.as_tensor(ds.take_train(pool))
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(trainer.views.eval(stored[i:i + 512])).float(), -1)
                           for i in range(0, len(stored), 512)]).numpy()
    truth = np.asarray(ds.y_train)[pool]
    predicted, confidence = probs.argmax(-1), probs.max(-1)
    c = ds.num_classes
    marginal = np.bincount(predicted, minlength=c) / len(predicted)
    labeled = np.bincount(split.labels(ds.y_train), minlength=c) / len(split.labeled)
    confident = confidence >= threshold
    recall = [float((predicted[truth == k] == k).mean()) if (truth == k).any() else None for k in range(c)]
    masks = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            train = json.loads(line).get("train", {})
            if "mask_rate" in train:
                masks.append(round(train["mask_rate"], 3))
    return {"run": run, "pool": int(len(pool)), "pool_accuracy": round(float((predicted == truth).mean()), 4),
            "confident": round(float(confident.mean()), 4),
            "confident_accuracy": round(float((predicted[confident] == truth[confident]).mean()), 4)
            if confident.any() else None,
            "marginal": [round(float(v), 3) for v in marginal],
            "marginal_tv": round(float(0.5 * np.abs(marginal - labeled).sum()), 4),
            "per_class_recall": [None if r is None else round(r, 3) for r in recall], "mask_rate": masks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--threshold", type=float, default=0.95)
    args = parser.parse_args()
    for run in args.runs:
        print(json.dumps(diagnose(run, args.threshold)), flush=True)


if __name__ == "__main__":
    main()
