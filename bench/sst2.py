"""SST-2 with 20 and 100 labels, on all-MiniLM-L6-v2 sentence embeddings.

    python bench/sst2.py embed                     # embedding time of the 9,613 sentences (cold cache)
    python bench/sst2.py choose --seeds 0          # the strong-view noise, chosen on the dev split
    python bench/sst2.py compare --labels 20 100 --seeds 0 1 2 --strong-noise S

The official files (../shared/data/sst2/stsa.binary.{train,dev,test}: 6,920 / 872 / 1,821
sentences, "label sentence" per line) are rewritten as mentor's "label<TAB>sentence" files
under bench/.sst2 (ignored by git). The choose and compare modes are `mentor compare --folds 0`
(mentor.compare, since 2026-12-02): every run is `mentor train --dataset text --data-path
train.tsv --test-path test.tsv --num-labeled N --method M --strong-noise S --steps 3000 --seed K`
(the split draws N/2 labels per class with the seed; every training sentence is in the
unlabeled pool), with every other flag at its default; Mean Teacher compares two noisy views
and gets --input-noise S as well. scikit-learn's LabelSpreading (kNN kernel, k = 7) and, as a
supervised reference, LogisticRegression are fitted with their defaults on the same
standardised embeddings and the same labeled sentences (before 2026-12-02 LabelSpreading ran
100 iterations instead of its default 30). The choose mode scores the dev split only (it never
reads a test figure). Cells: bench/runs/sst2/; rows before 2026-12-02: bench/results/sst2.jsonl.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import time

import torch

from fashion_mnist import prepare, record_result

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "shared", "data", "sst2")
WORK = os.path.join(HERE, ".sst2")
RESULTS = os.path.join(HERE, "results", "sst2.jsonl")
METHODS = ("supervised", "fixmatch", "uda", "mean_teacher", "meta_pseudo_labels")
SCIKIT_LEARN = ("label_spreading", "logistic_regression")


def tsv(split: str) -> str:
    """The official split rewritten as label<TAB>sentence (made once)."""
    out = os.path.join(WORK, f"{split}.tsv")
    if not os.path.exists(out):
        os.makedirs(WORK, exist_ok=True)
        with open(os.path.join(SOURCE, f"stsa.binary.{split}")) as f, open(out + ".tmp", "w") as g:
            for line in f:
                label, _, sentence = line.strip().partition(" ")
                g.write(f"{label}\t{sentence}\n")
        os.replace(out + ".tmp", out)
    return out


def row(**fields) -> dict:
    return {**fields, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}


def compare_split(mode: str, labels: int, seeds, noise: float, steps: int, jobs: int) -> dict:
    """mentor compare --folds 0 on the official train file: the methods and the two scikit-learn
    references, scored on dev ("choose") or test ("compare"); cells under bench/runs/sst2/."""
    from mentor.compare import compare
    from mentor.train import TrainConfig

    split = "dev" if mode == "choose" else "test"
    config = TrainConfig(dataset="text", data_path=tsv("train"), dataset_options={"test_path": tsv(split)},
                         num_labeled=labels, steps=steps, strong_noise=noise, eval_every=0, device="cpu",
                         progress=False)
    out = os.path.join(HERE, "runs", "sst2", f"{split}-{labels}-noise{noise}-{steps}")
    return compare(config, methods=[*METHODS, *SCIKIT_LEARN], seeds=seeds, folds=0, out=out, jobs=jobs,
                   resume="auto", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("embed", "choose", "compare"))
    parser.add_argument("--labels", nargs="+", type=int, default=[20, 100])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--strong-noise", type=float, nargs="+", default=[0.3, 1.0, 2.0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--jobs", type=int, default=2, help="cells in parallel worker processes")
    args = parser.parse_args()
    os.environ["MENTOR_CACHE"] = os.path.join(WORK, "cache")  # the runs share the embeddings
    prepare(args, RESULTS)
    if args.mode == "embed":
        from mentor.data.sources.text import embed, read_sentences

        shutil.rmtree(os.environ["MENTOR_CACHE"], ignore_errors=True)  # a cold cache: the time is the model's
        sentences = [s for split in ("train", "dev", "test") for s in read_sentences(tsv(split))[1]]
        started = time.perf_counter()
        embed(sentences)
        seconds = time.perf_counter() - started
        record_result(RESULTS, row(mode="embed", sentences=len(sentences), seconds=round(seconds, 1),
                                   per_second=round(len(sentences) / seconds)))
        return
    from mentor.compare import format_tables

    for noise in args.strong_noise:
        for n in args.labels:
            print(f"\nSST-2, {args.mode} ({'dev' if args.mode == 'choose' else 'test'} split), {n} labels, strong "
                  f"noise {noise}:")
            print(format_tables(compare_split(args.mode, n, args.seeds, noise, args.steps, args.jobs)))


if __name__ == "__main__":
    main()
