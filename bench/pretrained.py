"""Frozen pretrained embeddings against training from scratch, on a CPU (BENCHMARKS.md,
"Pretrained backbones").

    python bench/pretrained.py subset --cifar ../shared/data/cifar10-jpeg.tar.gz --train 10000 --out data/cifar10-10k.npz
    python bench/pretrained.py embed --data data/cifar10-10k.npz --resolution 128 --views 2
    python bench/pretrained.py throughput --data data/cifar10-10k.npz --resolution 128
    python bench/pretrained.py probe --data data/cifar10-10k.npz --resolution 128 --views 2
    python bench/pretrained.py ssl --data data/cifar10-10k.npz --resolution 128 --views 2 --steps 3000
    python bench/time_to_accuracy.py --minutes M --out runs/scratch-fixmatch-250 -- --method fixmatch \\
        --dataset npz --data-path data/cifar10-10k.npz --model small_cnn --num-labeled 250 --device cpu

1. ``subset``: a seeded class-balanced subset of CIFAR-10's training images (the unlabeled pool
   of every run; the labeled examples are drawn from it) and the whole test split, as .npz.
2. ``embed``: the packaged EfficientNet-Lite0 embeds it (clean + K weak + K strong views of
   each training image, the test split clean) into mentor's cache; prints the throughput.
3. ``probe``: scikit-learn's logistic regression on the clean embeddings of the labeled
   examples (mentor's own seeded split of 40 / 250 / 4,000), test accuracy per seed.
4. ``ssl``: mentor's methods (supervised, FixMatch, MPL, MixMatch) training an MLP on the
   cached embeddings with the cached views, at fixed steps; test accuracy and seconds.
Settings are fixed before any run (no choice on the test split); the from-scratch runs get the
wall-clock of the embedding route (time_to_accuracy.py sizes their steps to it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

LABELS = (40, 250, 4000)
METHODS = ("supervised", "fixmatch", "meta_pseudo_labels", "mixmatch")


def embed_options(args) -> dict:
    return {"embed": "efficientnet_lite0", "embed_resolution": args.resolution, "embed_views": args.views}


def run_config(args, method: str, labels: int, seed: int, steps: int):
    from mentor.train import TrainConfig

    return TrainConfig(method=method, dataset="npz", data_path=args.data, dataset_options=embed_options(args),
                       num_labeled=labels, model="mlp", model_options={"hidden": [256]}, steps=steps,
                       batch_size=64, unlabeled_batch_size=448, optimizer="nesterov", lr=0.03, momentum=0.9,
                       weight_decay=5e-4, schedule="cosine", eval_every=0, seed=seed, progress=False, device="cpu")


def cmd_subset(args) -> None:
    from mentor.data import load_dataset

    ds = load_dataset("cifar10", args.cifar)
    rng = np.random.default_rng(args.seed)
    per_class = args.train // ds.num_classes
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(ds.y_train == c), per_class, replace=False)
                                   for c in range(ds.num_classes)]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, x_train=ds.x_train[keep], y_train=ds.y_train[keep], x_test=ds.x_test, y_test=ds.y_test,
             train_indices=keep)
    print(json.dumps({"out": args.out, "train": int(len(keep)), "test": int(len(ds.x_test))}))


def cmd_embed(args) -> None:
    from mentor.data import load_dataset
    from mentor.embedding import embed_dataset

    started = time.perf_counter()
    ds = embed_dataset(load_dataset("npz", args.data), embed_options(args))
    seconds = time.perf_counter() - started
    images = len(ds.x_train) * (1 + 2 * args.views) + len(ds.x_test)
    print(json.dumps({"train": list(ds.x_train.shape), "test": list(ds.x_test.shape), "seconds": round(seconds, 1),
                      "images_embedded": images, "images_per_s": round(images / seconds, 1),
                      "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}))


def cmd_throughput(args) -> None:
    """Images per second through the backbone alone (clean views, after one warm-up batch), and
    per view with the augmentations, on this machine's threads, nothing else running."""
    from mentor.augment import ImageViews, RandAugment
    from mentor.data import load_dataset
    from mentor.embedding import Embedder

    ds = load_dataset("npz", args.data)
    images = torch.as_tensor(ds.x_train[:args.images])
    embedder = Embedder("efficientnet_lite0", ds.input_shape, "packaged", args.resolution)
    views = ImageViews((127 / 255,) * 3, (128 / 255,) * 3, randaugment=RandAugment("cifar", 2, 0.5, None))
    g = torch.Generator().manual_seed(0)
    out = {"resolution": args.resolution, "threads": torch.get_num_threads(), "images": len(images)}
    with torch.inference_mode():
        for batch in (16, 64):
            embedder(views.eval(images[:batch]))
            for name, make in (("clean", lambda x: views.eval(x)), ("strong", lambda x: views.strong(x, g))):
                started = time.perf_counter()
                for i in range(0, len(images), batch):
                    embedder(make(images[i:i + batch]))
                out[f"{name}_images_per_s_batch{batch}"] = round(len(images) / (time.perf_counter() - started), 1)
    print(json.dumps(out))


def cmd_probe(args) -> None:
    from sklearn.linear_model import LogisticRegression

    from mentor.train.run_data import prepare_data

    rows = []
    for labels in LABELS:
        for seed in range(args.seeds):
            ds, split = prepare_data(run_config(args, "supervised", labels, seed, 1))
            x = np.asarray(ds.x_train[split.labeled])[:, 0]
            mean, std = x.mean(0), x.std(0) + 1e-6
            clf = LogisticRegression(max_iter=3000, C=1.0).fit((x - mean) / std, split.labels(ds.y_train))
            accuracy = clf.score((np.asarray(ds.x_test)[:, 0] - mean) / std, ds.y_test)
            rows.append({"labels": labels, "seed": seed, "test_accuracy": round(float(accuracy), 4)})
            print(json.dumps(rows[-1]), flush=True)
    summarise(rows, "logistic_regression")


def cmd_ssl(args) -> None:
    from mentor.train import Trainer

    rows = []
    for labels in LABELS:
        for method in args.methods:
            for seed in range(args.seeds):
                started = time.perf_counter()
                summary = Trainer(run_config(args, method, labels, seed, args.steps)).fit()
                rows.append({"labels": labels, "method": method, "seed": seed,
                             "test_accuracy": round(summary["final_test_accuracy"], 4),
                             "seconds": round(time.perf_counter() - started, 1)})
                print(json.dumps(rows[-1]), flush=True)
    summarise(rows, "ssl")


def summarise(rows, kind: str) -> None:
    keys = sorted({(r["labels"], r.get("method", kind)) for r in rows})
    for labels, method in keys:
        accs = [r["test_accuracy"] for r in rows if r["labels"] == labels and r.get("method", kind) == method]
        print(f"{kind:20s} {method:20s} {labels:5d} labels: {100 * np.mean(accs):.2f} +- {100 * np.std(accs):.2f} "
              f"({len(accs)} seeds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("subset")
    p.add_argument("--cifar", required=True)
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_subset)
    for name, func in (("embed", cmd_embed), ("throughput", cmd_throughput), ("probe", cmd_probe), ("ssl", cmd_ssl)):
        p = sub.add_parser(name)
        p.add_argument("--data", required=True)
        p.add_argument("--resolution", type=int, default=128)
        p.add_argument("--views", type=int, default=2)
        p.add_argument("--seeds", type=int, default=3 if name == "probe" else 1)
        p.add_argument("--steps", type=int, default=3000)
        p.add_argument("--methods", nargs="*", default=list(METHODS))
        p.add_argument("--images", type=int, default=1024)
        p.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
