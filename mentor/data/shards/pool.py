"""Pools streamed from WebDataset shards (mentor.data.base.Pool): ``ShardPool`` reads in a
``WindowedOrder``: each epoch permutes the shards, takes them ``window`` at a time and permutes
the samples of each window, so a batch reads from a few open shards, not from all of them. Sample
k of the order is a pure function of (seed, k), so decoding runs ahead in DataLoader worker
processes (pinned, prefetched) and a checkpoint needs only the position: a resumed run reads
exactly what the killed one would have, whatever the number of workers. Under torchrun every rank
computes the global batch and decodes its own slice. Memory: one window's order, plus ``workers x
prefetch`` batches and their open shards, whatever the pool's size.
"""
from __future__ import annotations

import itertools
import os
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ...errors import CheckpointError, DataError
from ..pools import to_device
from .format import ShardSet


class WindowedOrder:
    """An endless order over a sharded index space with read locality (see the module's text).
    ``unit_sizes``: samples per shard (the index space is their concatenation); ``excluded``:
    indices never drawn (held-out labels)."""

    def __init__(self, unit_sizes: Sequence[int], seed: int, window: int = 8,
                 excluded: Optional[np.ndarray] = None):
        self.sizes = np.asarray(unit_sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.seed, self.window = int(seed), max(1, int(window))
        self.excluded = np.unique(np.asarray([] if excluded is None else excluded, dtype=np.int64))
        per_unit = np.bincount(np.searchsorted(self.offsets, self.excluded, side="right") - 1,
                               minlength=len(self.sizes)) if len(self.excluded) else np.zeros(len(self.sizes), np.int64)
        self.kept = self.sizes - per_unit
        self.epoch_length = int(self.kept.sum())
        if self.epoch_length <= 0:
            raise DataError("the streamed pool is empty: every sample is held out")
        self._epoch = None  # (epoch, windows, window offsets)
        self._window = None  # (epoch, window, order)

    def _epoch_plan(self, epoch: int):
        if self._epoch is None or self._epoch[0] != epoch:
            units = np.random.default_rng([self.seed, epoch]).permutation(len(self.sizes))
            windows = [units[i:i + self.window] for i in range(0, len(units), self.window)]
            lengths = [int(self.kept[w].sum()) for w in windows]
            self._epoch = (epoch, windows, np.concatenate([[0], np.cumsum(lengths)]))
        return self._epoch

    def _window_order(self, epoch: int, w: int, windows) -> np.ndarray:
        if self._window is None or self._window[:2] != (epoch, w):
            members = np.concatenate([np.arange(self.offsets[u], self.offsets[u + 1]) for u in windows[w]])
            if len(self.excluded):
                members = members[~np.isin(members, self.excluded)]
            order = members[np.random.default_rng([self.seed, epoch, w + 1]).permutation(len(members))]
            self._window = (epoch, w, order)
        return self._window[2]

    def take(self, start: int, count: int) -> np.ndarray:
        """Indices at positions start .. start + count - 1 of the endless order."""
        out = []
        position = int(start)
        while count > 0:
            epoch, within = divmod(position, self.epoch_length)
            _, windows, bounds = self._epoch_plan(epoch)
            w = int(np.searchsorted(bounds, within, side="right") - 1)
            order = self._window_order(epoch, w, windows)
            lo = within - int(bounds[w])
            part = order[lo:lo + count]
            out.append(part)
            count -= len(part)
            position += len(part)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# --- pools ---------------------------------------------------------------------------------
class ShardPool:
    """A pool streamed from shard sets: the concatenation of ``sets`` (e.g. the training shards,
    then the extra unlabeled ones), less ``excluded`` indices. ``targets``: a callable giving
    per-example soft targets of positions in the sets' index space (Noisy Student's teacher
    labels), or None. ``positions``: an optional array mapping this pool's index space onto the
    sets' (a selection, duplicates allowed); then ``excluded`` must be empty."""

    streamed = True
    x = y = None  # nothing held in memory: read as drawn (mentor.data.base.Pool)

    def __init__(self, sets: Sequence[ShardSet], excluded: Optional[np.ndarray] = None, window: int = 8,
                 positions: Optional[np.ndarray] = None, targets: Optional[Callable] = None,
                 unit: Optional[int] = None, name: str = "pool", workers: int = 0, positions_name: str = ""):
        self.sets = list(sets)
        shapes = {s.shape for s in self.sets}
        if len(shapes) != 1:
            raise DataError(f"the shard sets of the {name} hold images of different shapes {sorted(shapes)}; "
                            "pass --data-hp size=H,W to resize them to one")
        self.set_offsets = np.concatenate([[0], np.cumsum([len(s) for s in self.sets])])
        self.excluded = np.asarray([] if excluded is None else excluded, dtype=np.int64)
        self.window, self.positions, self.targets, self.name = window, positions, targets, name
        self.workers = workers  # decoding processes for read_ahead and batches
        self.positions_name = positions_name  # names a selection in the fingerprint (not hashed each time)
        self._fingerprint = None
        if positions is None:
            self.unit_sizes = np.concatenate([s.lengths for s in self.sets])
        else:  # a selection: fixed-size units of consecutive entries (sorted: a few shards each)
            unit = unit or int(max(1, np.median(self.sets[0].lengths)))
            full, rest = divmod(len(positions), unit)
            self.unit_sizes = np.asarray([unit] * full + ([rest] if rest else []), dtype=np.int64)
        self.indices = None

    def __len__(self) -> int:
        return int(self.unit_sizes.sum()) - len(self.excluded)

    @property
    def total(self) -> int:
        """The size of the index space (excluded indices included)."""
        return int(self.unit_sizes.sum())

    @property
    def shape(self):
        return self.sets[0].shape

    def fingerprint(self) -> str:
        """Names the pool: its shards, held-out indices and selection (a resumed run and
        pseudo-labels check it)."""
        if self._fingerprint is None:
            import hashlib
            digest = hashlib.sha256("/".join(s.fingerprint() for s in self.sets).encode())
            digest.update(np.asarray(self.excluded, dtype=np.int64).tobytes())
            if self.positions is not None:
                digest.update(f"selection:{self.positions_name}:{len(self.positions)}".encode())
            self._fingerprint = f"shards:{self.total}:{digest.hexdigest()[:16]}"
        return self._fingerprint

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (n, C, H, W) of pool indices (positions of a selection map onto the sets)."""
        source = self.source_positions(indices)
        out = np.empty((len(source),) + self.shape, dtype=np.uint8)
        which = np.searchsorted(self.set_offsets, source, side="right") - 1
        for k, shard_set in enumerate(self.sets):
            mine = np.flatnonzero(which == k)
            if len(mine):
                out[mine] = shard_set.images(source[mine] - self.set_offsets[k])
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Stored examples of the index space start .. stop - 1, in order (pseudo-labelling;
        excluded indices included, so positions stay the index space's)."""
        return self.images(np.arange(start, min(stop, self.total)))

    def read_ahead(self, ranges):
        """``read`` of each (start, stop) of ``ranges``, decoded ahead in worker processes."""
        for images, _ in _loader(_RangeReads(self), list(ranges), self.workers, None):
            yield images.numpy()

    def batches(self, batch_size: int, rank: int = 0, world: int = 1, device=None, workers: int = 0):
        """(stored, labels) of this rank's contiguous share of the index space, batch by batch,
        decoded ahead in ``workers`` processes (evaluation of a streamed test split)."""
        part = torch.tensor_split(torch.arange(self.total), world)[rank]
        ranges = [(int(part[s]), int(part[min(len(part), s + batch_size) - 1]) + 1)
                  for s in range(0, len(part), batch_size)]
        loader = _loader(_RangeReads(self), ranges, workers, device)
        for images, labels in loader:
            yield to_device(images, device), to_device(labels, device)

    def source_positions(self, indices: np.ndarray) -> np.ndarray:
        """Positions in the sets' index space of this pool's indices (the same, or a selection's)."""
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.positions is None else np.asarray(self.positions[indices], dtype=np.int64)

    def targets_of(self, indices: np.ndarray) -> Optional[torch.Tensor]:
        """The targets that come with the examples at these pool indices (None without targets)."""
        if self.targets is None:
            return None
        return torch.from_numpy(np.asarray(self.targets(self.source_positions(indices))))

    def labels(self, indices: np.ndarray) -> np.ndarray:
        source = self.source_positions(indices)
        which = np.searchsorted(self.set_offsets, source, side="right") - 1
        out = np.empty(len(source), dtype=np.int64)
        for k, shard_set in enumerate(self.sets):
            mine = np.flatnonzero(which == k)
            out[mine] = shard_set.labels[source[mine] - self.set_offsets[k]]
        return out

    def draws(self, batch_size: int, generator: torch.Generator, seed: int, rank: int, world: int, device,
              workers: int = 0) -> "ShardDraws":
        order = WindowedOrder(self.unit_sizes, seed, self.window, self.excluded)
        return ShardDraws(self, order, batch_size, rank, world, device, workers)


class _BatchReads(torch.utils.data.Dataset):
    """Batch k of the stream: this rank's slice of the global batch at positions k*B .. (k+1)*B - 1."""

    def __init__(self, pool: ShardPool, order: WindowedOrder, batch_size: int, rank: int, world: int):
        self.pool, self.order, self.batch_size, self.rank, self.world = pool, order, batch_size, rank, world

    def __getitem__(self, k: int):
        global_batch = self.order.take(k * self.batch_size * self.world, self.batch_size * self.world)
        mine = np.array_split(global_batch, self.world)[self.rank]
        images = torch.from_numpy(self.pool.images(mine))
        return torch.from_numpy(mine), images, self.pool.targets_of(mine)


class _RangeReads(torch.utils.data.Dataset):
    def __init__(self, pool: ShardPool):
        self.pool = pool

    def __getitem__(self, bounds):
        indices = np.arange(*bounds)
        labels = self.pool.labels(indices) if self.pool.positions is None else np.full(len(indices), -1)
        return torch.from_numpy(self.pool.images(indices)), torch.from_numpy(labels)


class _From(torch.utils.data.Sampler):
    """Keys from a list, or the integers from ``start`` on (an endless stream)."""

    def __init__(self, keys):
        self.keys = keys

    def __iter__(self):
        return iter(self.keys) if not isinstance(self.keys, int) else itertools.count(self.keys)


def _as_is(item):
    return item


def _loader(dataset, keys, workers: int, device):
    pin = device is not None and torch.device(device).type == "cuda"
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=_From(keys), num_workers=workers,
                                       pin_memory=pin, prefetch_factor=4 if workers else None, collate_fn=_as_is)


class ShardDraws:
    """Unlabeled batches of a ShardPool from a DataLoader that starts at a position; the
    position (batches consumed) is the whole state."""

    def __init__(self, pool: ShardPool, order: WindowedOrder, batch_size: int, rank: int, world: int, device,
                 workers: int):
        self.pool, self.device, self.workers = pool, torch.device(device), workers
        self.reads = _BatchReads(pool, order, batch_size, rank, world)
        self.position = 0
        self._iterator = None

    def next(self):
        if self._iterator is None:
            self._iterator = iter(_loader(self.reads, self.position, self.workers, self.device))
        positions, images, targets = next(self._iterator)
        self.position += 1
        iu = to_device(positions, self.device)
        x = to_device(images, self.device)
        t = None if targets is None else to_device(targets, self.device)
        return iu, x, t

    def state_dict(self) -> dict:
        return {"position": self.position, "pool": self.pool.fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        if "position" not in state:
            raise CheckpointError("the checkpoint's unlabeled stream is an in-memory one; this run streams its pool "
                                  "from shards")
        if state.get("pool") != self.pool.fingerprint():
            raise CheckpointError(f"the shards of the unlabeled pool changed since the checkpoint was written "
                                  f"({state.get('pool')} then, {self.pool.fingerprint()} now): resume needs the "
                                  "same shard files")
        self.close()
        self.position = int(state["position"])

    def close(self) -> None:
        self._iterator = None  # the DataLoader's workers end with their iterator


def default_workers() -> int:
    """Decoding processes per rank: up to 4, leaving a core to the training loop."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))
