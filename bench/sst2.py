"""SST-2 with 20 and 100 labels, on all-MiniLM-L6-v2 sentence embeddings.

    python bench/sst2.py embed                     # embedding time of the 9,613 sentences (cold cache)
    python bench/sst2.py choose --seeds 0          # the strong-view noise, chosen on the dev split
    python bench/sst2.py compare --labels 20 100 --seeds 0 1 2 --strong-noise S

The official files (../shared/data/sst2/stsa.binary.{train,dev,test}: 6,920 / 872 / 1,821
sentences, "label sentence" per line) are rewritten as mentor's "label<TAB>sentence" files
under bench/.sst2 (ignored by git). Every run is `mentor train --dataset text --data-path
train.tsv --test-path test.tsv --num-labeled N --method M --strong-noise S --steps 3000 --seed K`
(the split draws N/2 labels per class with the seed; every training sentence is in the
unlabeled pool), with every other flag at its default; Mean Teacher compares two noisy views
and gets --input-noise S as well. scikit-learn's LabelSpreading (kNN kernel, k = 7) and, as a
supervised reference, LogisticRegression are fitted with their defaults on the same
standardised embeddings and the same labeled sentences. The choose mode scores
the dev split only (it never reads a test figure). Rows: bench/results/sst2.jsonl.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time

import numpy as np
import torch

from fashion_mnist import prepare, record_result
from mentor.train import TrainConfig, Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "shared", "data", "sst2")
WORK = os.path.join(HERE, ".sst2")
RESULTS = os.path.join(HERE, "results", "sst2.jsonl")
METHODS = ("supervised", "fixmatch", "uda", "mean_teacher", "meta_pseudo_labels")
SCIKIT_LEARN = ("LabelSpreading", "LogisticRegression")


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


def config(method: str, labels: int, seed: int, noise: float, steps: int, evaluate_on: str) -> TrainConfig:
    return TrainConfig(method=method, dataset="text", data_path=tsv("train"),
                       dataset_options={"test_path": tsv(evaluate_on)}, num_labeled=labels, steps=steps, seed=seed,
                       strong_noise=noise, input_noise=noise if method == "mean_teacher" else None,
                       eval_every=0, device="cpu", progress=False)


def scikit_learn(name: str, trainer: Trainer) -> float:
    """LabelSpreading (the labeled and unlabeled sentences) or LogisticRegression (the labeled
    ones), scikit-learn's defaults, on the run's standardised embeddings and labeled split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading

    ds, split = trainer.dataset, trainer.split
    if name == "LogisticRegression":
        model = LogisticRegression(max_iter=1000).fit(ds.x_train[split.labeled], ds.y_train[split.labeled])
    else:
        y = np.full(len(ds.x_train), -1)
        y[split.labeled] = ds.y_train[split.labeled]
        model = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100).fit(ds.x_train, y)
    return float((model.predict(ds.x_test) == ds.y_test).mean())


def row(**fields) -> dict:
    return {**fields, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}


def run_methods(mode: str, labels: int, seed: int, noise: float, steps: int, methods, done: list) -> None:
    split = "dev" if mode == "choose" else "test"
    for method in [*methods, *SCIKIT_LEARN]:
        key = dict(mode=mode, labels=labels, seed=seed, strong_noise=noise, steps=steps, method=method)
        if any(all(r.get(k) == v for k, v in key.items()) for r in done):
            continue
        started = time.perf_counter()
        if method in SCIKIT_LEARN:
            accuracy = scikit_learn(method, Trainer(config("supervised", labels, seed, noise, steps, split)))
        else:
            accuracy = Trainer(config(method, labels, seed, noise, steps, split)).fit()["final_test_accuracy"]
        done.append(row(**key, split=split, accuracy=accuracy, seconds=round(time.perf_counter() - started, 1)))
        record_result(RESULTS, done[-1])


def table(done: list, mode: str, labels_list, seeds, noise: float, steps: int) -> None:
    print(f"\nSST-2, {mode} ({'dev' if mode == 'choose' else 'test'} split), strong noise {noise}, {steps} steps, "
          f"seeds {seeds}: accuracy, mean ± std")
    print("| method | " + " | ".join(f"{n} labels" for n in labels_list) + " |\n| --- |" + " --- |" * len(labels_list))
    for method in [*METHODS, *SCIKIT_LEARN]:
        cells = []
        for n in labels_list:
            acc = [100 * r["accuracy"] for r in done if r["mode"] == mode and r["labels"] == n and r["method"] == method
                   and r["strong_noise"] == noise and r["steps"] == steps and r["seed"] in seeds]
            cells.append(f"{statistics.mean(acc):.2f} ± {statistics.stdev(acc) if len(acc) > 1 else 0:.2f}"
                         if acc else "–")
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("embed", "choose", "compare"))
    parser.add_argument("--labels", nargs="+", type=int, default=[20, 100])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--strong-noise", type=float, nargs="+", default=[0.3, 1.0, 2.0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    os.environ["MENTOR_CACHE"] = os.path.join(WORK, "cache")  # the runs share the embeddings
    done = prepare(args, RESULTS)
    if args.mode == "embed":
        from mentor.data.text import embed, read_sentences

        shutil.rmtree(os.environ["MENTOR_CACHE"], ignore_errors=True)  # a cold cache: the time is the model's
        sentences = [s for split in ("train", "dev", "test") for s in read_sentences(tsv(split))[1]]
        started = time.perf_counter()
        embed(sentences)
        seconds = time.perf_counter() - started
        record_result(RESULTS, row(mode="embed", sentences=len(sentences), seconds=round(seconds, 1),
                                   per_second=round(len(sentences) / seconds)))
        return
    for noise in args.strong_noise:
        for n in args.labels:
            for seed in args.seeds:
                run_methods(args.mode, n, seed, noise, args.steps, METHODS, done)
        table(done, args.mode, args.labels, args.seeds, noise, args.steps)


if __name__ == "__main__":
    main()
