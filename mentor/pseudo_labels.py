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

import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .files import write_atomically, write_json_atomically
from .data.pools import ArrayPool, NpyPool
from .errors import CheckpointError, ConfigError, DataError
from .models.predict import predict

MANIFEST = "manifest.json"


# --- pools: ArrayPool and NpyPool live in mentor.data.pools ---------------------------------
def is_shard_pattern(path: str) -> bool:
    return path.endswith((".tar", ".json")) or "{" in path or "::" in path


def open_pool(path: str, size=None):
    """An unlabeled pool given on the command line: a .npy file of stored examples, in the
    format of the teacher's dataset (uint8 (N, C, H, W) images, or float rows), or WebDataset
    shards ('pool-{000000..000099}.tar', read with their images resized to ``size`` = (H, W)
    when given)."""
    if path.endswith(".npy"):
        return NpyPool(path)
    if is_shard_pattern(path):
        from .data.shards.pool import ShardPool
        from .data.shards import ShardSet

        pool = ShardPool([ShardSet(path, size=size)], name="unlabeled pool")
        pool.name = pool.fingerprint()
        return pool
    raise DataError(f"unlabeled pool {path!r}: give a .npy file of examples (uint8 images (N, C, H, W) "
                    "or feature rows) or WebDataset shards ('pool-{000000..000099}.tar'); without --data the "
                    "teacher's own unlabeled pool is labeled")


# --- labelling ----------------------------------------------------------------------------
class OneProcess:
    """The process context of a labelling run by one process (a trainer's ``dist`` under torchrun)."""

    rank, world, is_main = 0, 1, True

    def barrier(self) -> None:
        pass


def label_pool(model: torch.nn.Module, transform: Callable, pool, out: str, num_classes: int,
               device: torch.device, batch_size: int = 1024, shard_size: int = 65536,
               teacher: str = "", autocast: Optional[Callable] = None, progress: bool = True, ctx=None) -> dict:
    """Write the teacher's predictions on ``pool`` (``len`` and ``read(start, stop)``) to shards
    in ``out``; shards already there are kept (resume). Returns the manifest. With several
    processes (``ctx``: rank, world, is_main, barrier(), e.g. a trainer's ``dist`` under torchrun)
    they share the shards (rank r writes shards r, r + N, ...) and rank 0 writes the manifest."""
    ctx = ctx if ctx is not None else OneProcess()
    if batch_size <= 0 or shard_size <= 0:
        raise ConfigError(f"batch size and shard size must be positive, got {batch_size}, {shard_size}")
    n = len(pool)
    if n == 0:
        raise DataError("the unlabeled pool is empty: nothing to pseudo-label")
    os.makedirs(out, exist_ok=True)
    manifest = {"num_examples": n, "num_classes": num_classes, "shard_size": shard_size,
                "num_shards": -(-n // shard_size), "source": pool.name, "teacher": teacher}
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
            ranges = [(s, min(stop, s + batch_size)) for s in range(start, stop, batch_size)]
            inputs = pool.read_ahead(ranges)  # shards: decoded ahead in worker processes
            parts = [predict(model, transform, x, device, batch_size, autocast) for x in inputs]
            probs = torch.cat(parts).cpu()
            bad = torch.nonzero(~torch.isfinite(probs).all(dim=1)).flatten()
            if len(bad):  # a NaN prediction is no label: stop before writing it (or marking the set complete)
                raise DataError(f"{len(bad)} example(s) of the pool {pool.name} give NaN or infinite "
                                f"predictions, first example {start + int(bad[0])}: its inputs hold NaN or infinite "
                                "values; clean the pool and label again")
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


class LabelShards:
    """The teacher's soft labels of pool positions, read shard by shard from a labels folder
    (at most ``cache`` shards in memory): the targets of a streamed Noisy Student selection.
    Picklable, for DataLoader workers."""

    def __init__(self, folder: str, cache: int = 2):
        self.folder, self.cache = folder, cache
        self.manifest = _read_manifest(folder)
        self._shards: Dict[int, np.ndarray] = {}

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        size = self.manifest["shard_size"]
        out = np.empty((len(positions), self.manifest["num_classes"]), dtype=np.float32)
        shard_of = np.asarray(positions) // size
        for shard in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == shard)
            out[mine] = self._probs(int(shard))[np.asarray(positions)[mine] - shard * size]
        return out

    def _probs(self, shard: int) -> np.ndarray:
        if shard not in self._shards:
            if len(self._shards) >= self.cache:
                self._shards.pop(next(iter(self._shards)))
            self._shards[shard] = _read_shard(self.folder, shard, ("probs",))["probs"]
        return self._shards[shard]

    def __getstate__(self):
        return {**self.__dict__, "_shards": {}}


def _read_shard(folder: str, shard: int, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    path = os.path.join(folder, f"shard-{shard:05d}.npz")
    try:
        with np.load(path) as data:
            return {key: data[key] for key in keys}
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"pseudo-label shard {path} is missing or corrupt: {exc}") from None


def select_streamed(folder: str, num_classes: int, threshold: float = 0.3, per_class: Optional[int] = None,
                    balance: bool = True, seed: int = 0, excluded: Optional[np.ndarray] = None,
                    progress: bool = False):
    """``filter_and_balance`` in bounded memory, for pools of any size: pass 1 counts, per class,
    the examples at or above each value of the confidence grid (a histogram), which fixes every
    class threshold t_c and count n_c exactly as the in-memory version does; pass 2 draws each
    kept example's copies (K / n_c: the integer part, plus one with the fractional part's
    probability; generator seeded by (seed, shard)) and appends the positions to a .npy file.
    Memory: one label shard. ``excluded``: pool positions never selected (held-out labels).
    Returns (positions as a read-only memory map, per-class stats, the selection's name); the
    selection is written once into the labels folder (selection-NAME.npy) and reused."""
    import hashlib

    manifest = _read_manifest(folder)
    if not manifest.get("complete"):
        raise DataError(f"the pseudo-labels in {folder} are incomplete (a labelling was interrupted); "
                        "run the same `mentor pseudo-label` command again to finish it")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"confidence threshold must be in [0, 1], got {threshold}")
    excluded = np.unique(np.asarray([] if excluded is None else excluded, dtype=np.int64))
    settings = json.dumps([threshold, per_class, bool(balance), seed, manifest["source"], manifest["teacher"],
                           hashlib.sha1(excluded.tobytes()).hexdigest()])
    name = hashlib.sha1(settings.encode()).hexdigest()[:12]
    path, stats_path = os.path.join(folder, f"selection-{name}.npy"), os.path.join(folder, f"selection-{name}.json")
    if os.path.exists(path) and os.path.exists(stats_path):
        with open(stats_path) as f:
            return np.load(path, mmap_mode="r"), json.load(f), name
    size, shards = manifest["shard_size"], manifest["num_shards"]
    grid = np.asarray(sorted({g for g in GRID if g >= threshold} | {threshold}))  # ascending
    at_or_above = np.zeros((num_classes, len(grid)), dtype=np.int64)
    kept_total = 0

    def shard_arrays(shard):
        data = _read_shard(folder, shard, ("argmax", "confidence"))
        positions = shard * size + np.arange(len(data["argmax"]))
        keep = ~np.isin(positions, excluded) if len(excluded) else np.ones(len(positions), bool)
        return positions[keep], data["argmax"][keep], data["confidence"][keep].astype(np.float64)

    for shard in tqdm(range(shards), disable=not progress, desc="select (pass 1)", unit="shard"):
        _, argmax, confidence = shard_arrays(shard)
        kept_total += len(argmax)
        # bin b holds confidences in [grid[b], grid[b+1]); counts at or above grid[b] are suffix sums
        bins = np.searchsorted(grid, confidence, side="right") - 1
        valid = bins >= 0
        np.add.at(at_or_above, (argmax[valid], bins[valid]), 1)
    at_or_above = np.cumsum(at_or_above[:, ::-1], axis=1)[:, ::-1]
    k = kept_total // num_classes if per_class is None else int(per_class)
    if k <= 0:
        raise ConfigError(f"examples per class must be positive, got {k}")
    thresholds, stats = np.full(num_classes, threshold), []
    for c in range(num_classes):
        if balance:
            reach = np.flatnonzero(at_or_above[c] >= k)  # grid values with at least K examples above
            thresholds[c] = grid[reach[-1]] if len(reach) else threshold
        above = int(at_or_above[c][np.searchsorted(grid, thresholds[c])])
        stats.append({"class": c, "threshold": float(thresholds[c]), "above": above, "copies": 0})
    share = np.asarray([k / s["above"] if s["above"] else 0.0 for s in stats])
    # Temporary files of this process alone: under torchrun every rank computes the same selection
    # (it is deterministic) and renames its complete copy into place, whichever finishes first.
    raw = f"{path}.{os.getpid()}.parts"
    with open(raw, "wb") as sink:
        for shard in tqdm(range(shards), disable=not progress, desc="select (pass 2)", unit="shard"):
            positions, argmax, confidence = shard_arrays(shard)
            chosen = confidence >= thresholds[argmax]
            positions, argmax = positions[chosen], argmax[chosen]
            if balance:
                rng = np.random.default_rng([seed, shard])
                fraction = share[argmax] - np.floor(share[argmax])
                copies = np.floor(share[argmax]).astype(np.int64) + (rng.random(len(argmax)) < fraction)
            else:
                copies = np.ones(len(argmax), dtype=np.int64)
            counts = np.bincount(argmax, weights=copies, minlength=num_classes).astype(np.int64)
            for c in np.flatnonzero(counts):
                stats[c]["copies"] += int(counts[c])
            sink.write(np.repeat(positions, copies).astype(np.int64).tobytes())
    total = sum(s["copies"] for s in stats)
    if total == 0:
        os.remove(raw)
        raise DataError(f"no pseudo-labeled example has confidence >= {threshold}: the student would have no "
                        "unlabeled data; lower the threshold or train the teacher longer")
    partial = f"{path}.{os.getpid()}.tmp.npy"
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.int64, shape=(total,))
    with open(raw, "rb") as source:
        for start in range(0, total, 1 << 20):
            chunk = np.frombuffer(source.read(8 * min(1 << 20, total - start)), dtype=np.int64)
            array[start:start + len(chunk)] = chunk
    array.flush()
    del array
    os.replace(partial, path)
    os.remove(raw)
    write_json_atomically(stats_path, stats)
    return np.load(path, mmap_mode="r"), stats, name


__all__: Sequence[str] = ["LabelShards", "select_streamed", "ArrayPool", "NpyPool", "PseudoLabels", "Selection", "filter_and_balance",
                          "label_pool", "open_pool", "predict", "read_labels"]
