"""Frozen-embedding semi-supervised learning for images: a pretrained backbone embeds each image
once, with K weakly and K strongly augmented copies, and any method trains a small model on the
cached embeddings, in seconds on a CPU (as ``--dataset text`` does for sentences).

    mentor train --dataset image_folder --data-path photos/ --data-hp embed=efficientnet_lite0 \\
        --method fixmatch --model mlp --num-labeled 40

Options (``--data-hp``): ``embed`` (any model mentor can load: efficientnet_lite0, timm:NAME,
...), ``embed_pretrained`` (packaged for efficientnet_lite0, else hub or a PATH),
``embed_resolution`` (the side images are resized to on the device; default the model's
native one), ``embed_views`` (K, default 2: K weak and K strong copies of every training and
unlabeled image; the test split is embedded clean), ``embed_seed`` (the augmentations' seed,
default 0, not the run's: runs of any seed share one cache), ``embed_batch_size`` (default 16, see BATCH).

The augmentations are the run's image views (flip + translate for weak, then RandAugment +
Cutout for strong, the dataset's op set) at the stored resolution, then the backbone's resize
and normalisation. Methods see (1 + 2K, dim) stacks and pick one cached view per example and
step (mentor.augment.views.CachedViews): the consistency targets of FixMatch, UDA, MPL and
MixMatch become K draws per image instead of a fresh one every step, the price of embedding
once.

The cache (``$MENTOR_CACHE/embeddings``) is one .npy per split, keyed by the model, its
weights, the resolution, K, the seed and the images' bytes. It is written chunk by chunk into a
``.partial.npy`` whose progress is recorded after every chunk (each chunk's augmentations
are seeded by its position), so a killed embedding resumes where it stopped and gives the
same numbers; the finished file is renamed into place. Only one chunk of images and its
embeddings are in memory while embedding. A progress bar shows images/s; the figures are
saved next to the cache (``KEY.json``).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .augment import ImageViews, RandAugment, channel_stats
from .data.arrays import ArrayDataset
from .files import write_json_atomically
from .data.sources.folders import cache_dir
from .errors import ConfigError, DataError
from .models import create_model, input_normalization
from .models.layers import features_and_logits

OPTIONS = ("embed", "embed_pretrained", "embed_resolution", "embed_views", "embed_seed", "embed_batch_size")
CHUNK = 256  # images per chunk: the unit of progress and of resumption
# Images per backbone pass. Small on purpose: on a CPU, EfficientNet-Lite0 at 128 px runs faster
# in batches of 16 than of 64 (BENCHMARKS.md, "Pretrained backbones"), where each layer's
# activations outgrow the allocator's reusable heap and every pass pays fresh page faults.
BATCH = 16


def split_options(options: dict) -> tuple:
    """(embedding options, the dataset's own options) of a run's --data-hp."""
    embed = {k: v for k, v in options.items() if k in OPTIONS}
    return embed, {k: v for k, v in options.items() if k not in OPTIONS}


def cache_folder() -> str:
    return os.path.join(cache_dir(), "embeddings")


@dataclass
class EmbeddedDataset(ArrayDataset):
    """An image dataset as cached embeddings: x_train (and x_unlabeled) (n, 1 + 2K, dim) stacks,
    x_test (n, 1, dim) clean embeddings. ``embedding`` says how they were made (the run's
    inference.json keeps it, so `mentor predict` embeds new images the same way)."""

    embedding: Optional[dict] = None

    @property
    def input_shape(self):
        return (self.x_train.shape[-1],)

    @property
    def is_image(self) -> bool:
        return False

    @property
    def cached_views(self) -> tuple:
        return self.embedding["views"], self.embedding["views"]


class Embedder(torch.nn.Module):
    """Images (standardised for the backbone) -> the features its classifier reads."""

    def __init__(self, model: str, image_shape, pretrained: Optional[str], resolution: Optional[int]):
        super().__init__()
        options = {"pretrained": pretrained} if pretrained else {}
        if resolution:
            options["resolution"] = int(resolution)
        self.backbone = create_model(model, tuple(image_shape), 2, **options).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return features_and_logits(self.backbone, x)[0]


def _resolve(dataset: ArrayDataset, options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown embedding option(s) {', '.join(unknown)}; they are {', '.join(OPTIONS)}")
    if not dataset.is_image:
        raise DataError(f"embed={options['embed']!r} embeds images; dataset {dataset.name!r} holds features "
                        f"of shape {dataset.input_shape}")
    model = str(options["embed"])
    pretrained = options.get("embed_pretrained")
    if pretrained is None:
        pretrained = "packaged" if model == "efficientnet_lite0" else ("hub" if model.startswith("timm:") else None)
    if pretrained is None:
        raise ConfigError(f"embed={model}: an embedding needs pretrained weights; pass embed_pretrained=PATH")
    views = int(options.get("embed_views", 2))
    if views < 1:
        raise ConfigError(f"embed_views must be >= 1 (weak and strong copies per image), got {views}")
    normalization = input_normalization(model, {"pretrained": pretrained})
    return {"model": model, "pretrained": str(pretrained), "resolution": options.get("embed_resolution"),
            "views": views, "seed": int(options.get("embed_seed", 0)),
            "batch_size": int(options.get("embed_batch_size", BATCH)),
            "image_shape": list(dataset.input_shape), "normalization": normalization}


def _weights_id(spec: dict) -> str:
    """What identifies the weights in the cache key: a file's size and modification time, else the name."""
    path = spec["pretrained"]
    if os.path.isfile(path):
        stat = os.stat(path)
        return f"{os.path.abspath(path)}:{stat.st_size}:{int(stat.st_mtime)}"
    return path


def _key(spec: dict, images: np.ndarray, views: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({k: spec[k] for k in ("model", "resolution", "seed")}).encode())
    digest.update(f"{_weights_id(spec)}|views={views}|shape={images.shape}".encode())
    for start in range(0, len(images), 4096):
        digest.update(np.ascontiguousarray(images[start:start + 4096]).tobytes())
    return digest.hexdigest()[:32]


def embed_images(images: np.ndarray, spec: dict, make_embedder, views_of, views: int, label: str,
                 progress: bool = True) -> np.ndarray:
    """(n, 1 + 2 x views, dim) float32 embeddings of uint8 ``images`` (``views`` = 0: the clean
    view only), from the cache or computed chunk by chunk into it. Returns a copy-on-write memory map
    (writes stay in memory, the cache file is never changed). ``make_embedder()`` gives the
    backbone, built only when something is to be embedded (a cache hit never loads its weights)."""
    folder = cache_folder()
    os.makedirs(folder, exist_ok=True)
    key = _key(spec, images, views)
    path, partial, record = (os.path.join(folder, f"{key}{suffix}") for suffix in (".npy", ".partial.npy", ".json"))
    if os.path.exists(path):
        try:
            cached = np.load(path, mmap_mode="c")
            if cached.shape[0] == len(images):
                return cached
        except ValueError:
            pass  # a corrupt cache entry: embed again and replace it
    done_path = partial + ".done"
    embedder = make_embedder()
    with torch.inference_mode():
        dim = embedder(views_of.eval(torch.as_tensor(images[:1]))).shape[-1]
    shape = (len(images), 1 + 2 * views, dim)
    done = 0
    if os.path.exists(partial) and os.path.exists(done_path):
        try:
            out = np.lib.format.open_memmap(partial, mode="r+")
            with open(done_path) as f:
                done = int(f.read().strip() or 0) if out.shape == shape else 0
        except (ValueError, OSError):
            done = 0
    if done == 0:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
    started, counted = time.perf_counter(), 0
    bar = tqdm(total=len(images), initial=done, desc=f"embedding {label}", unit="img", disable=not progress)
    batch = spec["batch_size"]
    with torch.inference_mode():
        for start in range(done, len(images), CHUNK):
            chunk = torch.as_tensor(np.asarray(images[start:start + CHUNK]))
            generator = torch.Generator().manual_seed(spec["seed"] * 1_000_003 + start)
            stacks = [views_of.eval(chunk)]
            stacks += [views_of.weak(chunk, generator) for _ in range(views)]
            stacks += [views_of.strong(chunk, generator) for _ in range(views)]
            for v, inputs in enumerate(stacks):
                parts = [embedder(inputs[i:i + batch]) for i in range(0, len(inputs), batch)]
                out[start:start + len(chunk), v] = torch.cat(parts).float().numpy()
            out.flush()
            with open(done_path, "w") as f:  # after the chunk is on disk: a kill resumes at the next
                f.write(str(start + len(chunk)))
            counted += len(chunk)
            bar.update(len(chunk))
            bar.set_postfix(views=len(stacks), img_per_s=f"{counted * len(stacks) / (time.perf_counter() - started):.0f}")
    bar.close()
    seconds = time.perf_counter() - started
    del out
    os.replace(partial, path)
    os.remove(done_path)
    write_json_atomically(record, {"images": len(images), "views": 1 + 2 * views, "dim": int(dim),
                                   "seconds": round(seconds, 2), "embedded_images": counted * (1 + 2 * views),
                                   "images_per_s": round(counted * (1 + 2 * views) / max(seconds, 1e-9), 1),
                                   "model": spec["model"], "resolution": spec["resolution"],
                                   "torch_threads": torch.get_num_threads()})
    return np.load(path, mmap_mode="c")


def embed_dataset(dataset: ArrayDataset, options: dict, progress: bool = True) -> EmbeddedDataset:
    """The image dataset as cached embeddings (see the module docstring)."""
    spec = _resolve(dataset, options)
    make_embedder = functools.cache(lambda: Embedder(spec["model"], spec["image_shape"], spec["pretrained"],
                                                     spec["resolution"]))
    mean, std = spec["normalization"] or channel_stats(dataset.x_train)
    views_of = ImageViews(mean, std, hflip=dataset.hflip, randaugment=RandAugment(dataset.augment_set, 2, 0.5, None))
    k = spec["views"]
    x_train = embed_images(dataset.x_train, spec, make_embedder, views_of, k, "train", progress)
    x_unlabeled = None
    if dataset.x_unlabeled is not None and len(dataset.x_unlabeled):
        x_unlabeled = embed_images(dataset.x_unlabeled, spec, make_embedder, views_of, k, "unlabeled", progress)
    x_test = embed_images(dataset.x_test, spec, make_embedder, views_of, 0, "test", progress)
    spec.update(image_mean=[float(v) for v in mean], image_std=[float(v) for v in std], dim=int(x_train.shape[-1]),
                source=dataset.name)
    spec.pop("normalization")
    return EmbeddedDataset(**{**vars(dataset), "x_train": x_train, "x_test": x_test,
                              "x_unlabeled": x_unlabeled, "embedding": spec})
