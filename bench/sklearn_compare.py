"""mentor's networks next to scikit-learn's semi-supervised estimators, on the same splits.

    python bench/sklearn_compare.py --seeds 0 1 2 [--problems digits wine breast_cancer] [--steps 3000]

One `mentor compare --folds 0` per problem (mentor.compare, since 2026-12-02): per seed the
labeled rows are the ones `mentor train --dataset D --num-labeled N --seed K` labels (digits 50,
wine 15, breast_cancer 20), every training row is in the unlabeled pool, and every entry is
trained on that same split and scored on the dataset's test split, with a paired 95% interval
of its difference to mentor's supervised network over the test examples:
- scikit-learn, its defaults: LabelSpreading (kNN kernel, k = 7), SelfTrainingClassifier around
  LogisticRegression (threshold 0.75), and LogisticRegression on the labeled rows alone;
- mentor with its defaults and --steps: supervised, fixmatch and meta_pseudo_labels, with the
  Gaussian strong view 0.15 (SemiSupervisedClassifier's default). These are the networks
  SemiSupervisedClassifier trains, on the rows as the dataset stores them (tables standardised
  on their training split, digits in [0, 1]); the estimator standardises X itself, which is
  the one difference from the rows before 2026-12-02 (bench/results/sklearn_compare.jsonl).
Settings are fixed before any result (each library's defaults). Cells: bench/runs/sklearn-compare/.
"""
from __future__ import annotations

import argparse
import os

import torch

from mentor.compare import compare, format_tables
from mentor.train import TrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))
PROBLEMS = {"digits": 50, "wine": 15, "breast_cancer": 20}
ENTRIES = ["supervised", "fixmatch", "meta_pseudo_labels", "logistic_regression", "label_spreading", "self_training"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=sorted(PROBLEMS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2, help="cells in parallel worker processes")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for problem in args.problems:
        config = TrainConfig(dataset=problem, num_labeled=PROBLEMS[problem], steps=args.steps, eval_every=0,
                             device="cpu", progress=False)
        out = os.path.join(HERE, "runs", "sklearn-compare", f"{problem}-{args.steps}")
        result = compare(config, methods=ENTRIES, seeds=args.seeds, folds=0, out=out, jobs=args.jobs, resume="auto",
                         progress=False)
        print(f"\n{problem}, {PROBLEMS[problem]} labels:")
        print(format_tables(result))


if __name__ == "__main__":
    main()
