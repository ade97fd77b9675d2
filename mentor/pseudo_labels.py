"""Pseudo-labels on disk: a teacher's predictions on an unlabeled pool of any size, and Noisy
Student's filter and balance.

Noisy Student (seeds/002; REFERENCES.md "Noisy Student"), steps 2 and 3: the teacher, not
noised (eval mode: no dropout, no stochastic depth; clean inputs: no augmentation), predicts
the unlabeled pool; the predictions are filtered by confidence and balanced per class.

Layout of a labels folder (``label_pool``):
  manifest.json       what was labeled (pool size, classes, shard size, teacher) and, once every
                      shard is written, "complete": true
  shard-00000.npz ... per shard of ``shard_size`` examples, in pool order: ``probs`` (N, C)
                      float16 (the soft labels), ``argmax`` (N,) int64, ``confidence`` (N,)
                      float32 (the largest probability, from the float32 softmax)
Each shard is written atomically, so a killed labelling resumes at the first missing shard,
and memory stays bounded by one batch of inputs plus one shard of outputs whatever the pool
size: pools are read batch by batch (``NpyPool`` reads a .npy file by offset, never whole).
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data.files import write_atomically, write_json_atomically
from .errors import CheckpointError, ConfigError, DataError

MANIFEST = "manifest.json"


# --- pools ------------------------------------------------------------------------------
class ArrayPool:
    """An in-memory (or memory-mapped) array of stored examples."""

    def __init__(self, x: np.ndarray, name: str = "array"):
        self.x, self.name = x, name

    def __len__(self) -> int:
        return len(self.x)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.x[start:stop])


class NpyPool:
    """A .npy file read row range by row range with plain file reads: resident memory is one
    range, however large the file (a memory map would keep every page it touched resident)."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise DataError(f"unlabeled pool {path!r}: no such file")
        self.name = path
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran, dtype = read_header(f)
            except ValueError as exc:
                raise DataError(f"unlabeled pool {path!r} is not a .npy file: {exc}") from None
            self.offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise DataError(f"unlabeled pool {path!r}: need a C-ordered numeric array of examples, "
                            f"got shape {shape}, dtype {dtype}, fortran order {fortran}")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self.offset + self.row_bytes * self.shape[0]
        if os.path.getsize(path) < expected:
            raise DataError(f"unlabeled pool {path!r} is truncated: {os.path.getsize(path)} bytes, "
                            f"its header promises {expected}")

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, len(self))
        out = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        with open(self.name, "rb") as f:
            f.seek(self.offset + start * self.row_bytes)
            f.readinto(memoryview(out).cast("B"))
        return out


def open_pool(path: str) -> NpyPool:
    """An unlabeled pool given on the command line: a .npy file of stored examples, in the
    format of the teacher's dataset (uint8 (N, C, H, W) images, or float rows)."""
    if path.endswith(".npy"):
        return NpyPool(path)
    raise DataError(f"unlabeled pool {path!r}: give a .npy file of examples (uint8 images (N, C, H, W) "
                    "or feature rows); without --data the teacher's own unlabeled pool is labeled")


# --- labelling ----------------------------------------------------------------------------
@torch.no_grad()
def eval_batches(model: torch.nn.Module, transform: Callable, x, device: torch.device, batch_size: int,
                 forward: Callable = lambda model, inputs: model(inputs),
                 autocast: Optional[Callable] = None) -> torch.Tensor:
    """``forward(model, inputs)`` (default: the logits) in float32 on stored examples x, in eval
    mode (no dropout or stochastic depth, batch-norm running statistics), batch by batch, on
    ``device``; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            inputs = transform(torch.as_tensor(x[start:start + batch_size], device=device))
            with autocast() if autocast is not None else contextlib.nullcontext():
                out.append(forward(model, inputs))
    finally:
        model.train(was_training)
    return torch.cat(out).float() if out else torch.zeros(0)


def predict(model: torch.nn.Module, transform: Callable, x, device: torch.device,
            batch_size: int, autocast: Optional[Callable] = None) -> torch.Tensor:
    """The model's float32 softmax on stored examples x (``eval_batches``)."""
    logits = eval_batches(model, transform, x, device, batch_size, autocast=autocast)
    return F.softmax(logits, dim=-1) if len(logits) else logits


def label_pool(model: torch.nn.Module, transform: Callable, pool, out: str, num_classes: int,
               device: torch.device, batch_size: int = 1024, shard_size: int = 65536,
               teacher: str = "", autocast: Optional[Callable] = None, progress: bool = True) -> dict:
    """Write the teacher's predictions on ``pool`` (``len`` and ``read(start, stop)``) to shards
    in ``out``; shards already there are kept (resume). Returns the manifest. Under torchrun the
    processes share the shards (rank r writes shards r, r + N, ...) and rank 0 the manifest."""
    from .train.distributed import context

    ctx = context()
    if batch_size <= 0 or shard_size <= 0:
        raise ConfigError(f"batch size and shard size must be positive, got {batch_size}, {shard_size}")
    n = len(pool)
    if n == 0:
        raise DataError("the unlabeled pool is empty: nothing to pseudo-label")
    os.makedirs(out, exist_ok=True)
    manifest = {"num_examples": n, "num_classes": num_classes, "shard_size": shard_size,
                "num_shards": -(-n // shard_size), "source": getattr(pool, "name", "pool"), "teacher": teacher}
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        saved = _read_manifest(out)
        differs = [k for k in ("num_examples", "num_classes", "shard_size", "source", "teacher")
                   if saved.get(k) != manifest[k]]
        if differs:
            detail = ", ".join(f"{k}: {saved.get(k)!r} there vs {manifest[k]!r} now" for k in differs)
            raise ConfigError(f"{out} holds labels of another pool or teacher ({detail}); choose another --out")
        if saved.get("complete"):
            return saved
    ctx.barrier()  # every process has checked the folder before rank 0 rewrites its manifest
    if ctx.is_main:
        write_json_atomically(path, manifest)
    mine = range(ctx.rank, manifest["num_shards"], ctx.world)
    bar = tqdm(total=sum(min(n, (i + 1) * shard_size) - i * shard_size for i in mine),
               disable=not progress or not ctx.is_main, desc="pseudo-label", unit="ex")
    for shard in mine:
        start, stop = shard * shard_size, min(n, (shard + 1) * shard_size)
        shard_path = os.path.join(out, f"shard-{shard:05d}.npz")
        if not os.path.exists(shard_path):
            parts = [predict(model, transform, pool.read(s, min(stop, s + batch_size)), device, batch_size, autocast)
                     for s in range(start, stop, batch_size)]
            probs = torch.cat(parts).cpu()
            confidence, argmax = probs.max(dim=1)
            arrays = {"probs": probs.numpy().astype(np.float16), "argmax": argmax.numpy(),
                      "confidence": confidence.numpy()}
            write_atomically(shard_path, lambda f: np.savez(f, **arrays))
        bar.update(stop - start)
    bar.close()
    ctx.barrier()  # every shard is on disk
    manifest["complete"] = True
    if ctx.is_main:
        write_json_atomically(path, manifest)
    ctx.barrier()
    return manifest


def _read_manifest(folder: str) -> dict:
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
        raise DataError(f"{folder} holds no pseudo-labels: no {MANIFEST} (make them with `mentor pseudo-label`)")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable or corrupt: {exc}") from None


@dataclass
class PseudoLabels:
    probs: np.ndarray       # (N, C) float16: the teacher's soft labels
    argmax: np.ndarray      # (N,) int64: its hard labels
    confidence: np.ndarray  # (N,) float32: the largest probability
    manifest: dict


def read_labels(folder: str) -> PseudoLabels:
    """Every shard of a complete labels folder, concatenated in pool order."""
    manifest = _read_manifest(folder)
    if not manifest.get("complete"):
        raise DataError(f"the pseudo-labels in {folder} are incomplete (a labelling was interrupted); "
                        "run the same `mentor pseudo-label` command again to finish it")
    parts: Dict[str, List[np.ndarray]] = {"probs": [], "argmax": [], "confidence": []}
    for shard in range(manifest["num_shards"]):
        path = os.path.join(folder, f"shard-{shard:05d}.npz")
        try:
            with np.load(path) as data:
                for key in parts:
                    parts[key].append(data[key])
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"pseudo-label shard {path} is missing or corrupt: {exc}") from None
    labels = PseudoLabels(*(np.concatenate(parts[k]) for k in ("probs", "argmax", "confidence")), manifest)
    if len(labels.argmax) != manifest["num_examples"]:
        raise CheckpointError(f"{folder}: the shards hold {len(labels.argmax)} examples, the manifest "
                              f"{manifest['num_examples']}")
    return labels


# --- filter and balance ---------------------------------------------------------------------
@dataclass
class Selection:
    positions: np.ndarray  # pool positions of the student's pseudo-labeled set, duplicates included
    per_class: List[dict]  # per class: confidence threshold, examples above it, copies drawn


GRID = [i / 100 for i in range(101)]  # the official code's confidence grid, 0.00 ... 1.00


def filter_and_balance(argmax: np.ndarray, confidence: np.ndarray, num_classes: int, threshold: float = 0.3,
                       per_class: Optional[int] = None, balance: bool = True, seed: int = 0) -> Selection:
    """Noisy Student's data selection, as google-research/noisystudent's filter_unlabel.py does it.

    Without balancing: every example whose confidence is >= ``threshold`` (0.3 in the paper and
    both official scripts), once. With balancing, per class c (the teacher's argmax), K examples
    in expectation:
    - the class threshold t_c is the highest value of the grid 0.00, 0.01, ..., 1.00 (not below
      ``threshold``) at which at least K examples of c have confidence >= t_c, or ``threshold``
      itself when c never reaches K; n_c = the number of examples of c at or above t_c;
    - each of those n_c examples gets K / n_c copies, the integer part plus one more with
      probability equal to the fractional part. So a class with fewer than K examples is
      duplicated up to K, and one with more is subsampled at random, among its most confident
      (the grid keeps n_c >= K close to K), to K on average.
    - K (the flag num_image): the paper's ImageNet runs take 130K per class; the official SVHN
      script sets 53,113, the size of SVHN's extra set over the 10 classes. Default here,
      following the SVHN script: the pool size / the number of classes.
    The draws use a generator seeded by ``seed`` (the official code draws from numpy's global one).
    """
    argmax, confidence = np.asarray(argmax), np.asarray(confidence, dtype=np.float64)
    if argmax.shape != confidence.shape or argmax.ndim != 1:
        raise DataError(f"argmax and confidence must be two vectors of one length, got {argmax.shape} and "
                        f"{confidence.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"confidence threshold must be in [0, 1], got {threshold}")
    k = len(argmax) // num_classes if per_class is None else int(per_class)
    if k <= 0:
        raise ConfigError(f"examples per class must be positive, got {k}")
    rng = np.random.default_rng(seed)
    grid = sorted({g for g in GRID if g >= threshold} | {threshold}, reverse=True)
    chosen, stats = [], []
    for c in range(num_classes):
        members = np.flatnonzero(argmax == c)
        members = members[np.argsort(-confidence[members], kind="stable")]  # most confident first
        conf = confidence[members]
        if not balance:
            keep = members[conf >= threshold]
            chosen.append(keep)
            stats.append({"class": c, "threshold": threshold, "above": int(len(keep)), "copies": int(len(keep))})
            continue
        t_c = threshold
        for t in grid:  # downwards from 1.00: the first value with at least K examples above it
            if (conf >= t).sum() >= k:
                t_c = t
                break
        above = members[conf >= t_c]
        if len(above) == 0:
            stats.append({"class": c, "threshold": t_c, "above": 0, "copies": 0})
            continue
        share = k / len(above)
        copies = int(share) + (rng.random(len(above)) < share - int(share)).astype(np.int64)
        chosen.append(np.repeat(above, copies))
        stats.append({"class": c, "threshold": t_c, "above": int(len(above)), "copies": int(copies.sum())})
    positions = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if len(positions) == 0:
        raise DataError(f"no pseudo-labeled example has confidence >= {threshold}: the student would have no "
                        "unlabeled data; lower the threshold or train the teacher longer")
    return Selection(np.sort(positions).astype(np.int64), stats)


__all__: Sequence[str] = ["ArrayPool", "NpyPool", "PseudoLabels", "Selection", "filter_and_balance",
                          "label_pool", "open_pool", "predict", "read_labels"]
