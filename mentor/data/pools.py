"""The unlabeled pool and the test split as the trainer sees them: held in memory, or streamed
from shards. Both are ``Pool``s: a length, ``read(start, stop)`` (stored examples in order, for
evaluation and pseudo-labelling) and ``draws(...)``, the endless, seeded, resumable source of
unlabeled batches a ``SemiSupervisedStream`` takes. The trainer and the methods use them without
asking which they are; a method that must hold the whole pool (``Method.needs_pool_in_memory``)
refuses a streamed one by name.

Streamed pools (``ShardPool``) read in a ``WindowedOrder``: each epoch permutes the shards, takes
them ``window`` at a time and permutes the samples of each window, so a batch reads from a few open
shards, not from all of them. Sample k of the order is a pure function of (seed, k), so decoding
runs ahead in DataLoader worker processes (pinned, prefetched) and a checkpoint needs only the
position: a resumed run reads exactly what the killed one would have, whatever the number of
workers. Under torchrun every rank computes the global batch and decodes its own slice.
Memory: one window's order, plus ``workers x prefetch`` batches and their open shards, whatever
the pool's size.
"""
from __future__ import annotations

import itertools
import os
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .base import PoolDefaults
from ..errors import CheckpointError, DataError
from .shards import ShardSet


class IndexStream:
    """Endless batches of indices in 0..n-1: a fresh permutation per epoch, no index repeated
    within an epoch. A batch size >= n gives the whole set (shuffled) every step."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n = n
        self.batch_size = min(batch_size, n)
        self.generator = generator
        self._perm = torch.randperm(n, generator=generator)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > self.n:
            self._perm = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        out = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return out

    def state_dict(self) -> dict:
        return {"perm": self._perm.clone(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._perm = state["perm"].clone()
        self._pos = int(state["pos"])


# --- pools of stored examples read by row range (pseudo-labelling, `mentor shards --from X.npy`) ---
class ArrayPool(PoolDefaults):
    """An in-memory (or memory-mapped) array of stored examples."""

    def __init__(self, x: np.ndarray, name: str = "array"):
        self.x, self.name = x, name

    def __len__(self) -> int:
        return len(self.x)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.x[start:stop])


class NpyPool(PoolDefaults):
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
class MemoryPool(PoolDefaults):
    """Stored examples held as one tensor on the training device (the in-memory path: its
    draws are the IndexStream's permutations, the numbers every earlier run was made with)."""

    def __init__(self, x: torch.Tensor, indices: Optional[Sequence[int]] = None, y: Optional[torch.Tensor] = None):
        self.x, self.y = x, y  # y: labels, for a test split
        self.indices = indices  # each example's index in the dataset's pool
        self.name = "pool"  # what pseudo-labels of it name as their source

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self):
        return tuple(self.x.shape[1:])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop].cpu().numpy()

    def batches(self, batch_size: int, rank: int = 0, world: int = 1, device=None, workers: int = 0):
        """(stored, labels or None) of this rank's contiguous share, batch by batch."""
        x = torch.tensor_split(self.x, world)[rank] if world > 1 else self.x
        y = None if self.y is None else (torch.tensor_split(self.y, world)[rank] if world > 1 else self.y)
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], None if y is None else y[start:start + batch_size]

    def draws(self, batch_size: int, generator: torch.Generator, seed: int, rank: int, world: int, device,
              workers: int = 0) -> "MemoryDraws":
        return MemoryDraws(self.x, IndexStream(len(self.x), batch_size * world, generator), rank, world)

    def fingerprint(self) -> Optional[str]:
        return None


class MemoryDraws:
    def __init__(self, x: torch.Tensor, stream, rank: int, world: int):
        self.x, self.stream, self.rank, self.world = x, stream, rank, world

    def next(self) -> Tuple[torch.Tensor, torch.Tensor, None]:
        iu = to_device(rank_slice(self.stream.next(), self.rank, self.world), self.x.device)
        return iu, self.x[iu], None

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)

    def close(self) -> None:
        pass


def rank_slice(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (all of it with one process)."""
    return indices if world == 1 else torch.tensor_split(indices, world)[rank]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor to the device. To a GPU from pinned memory without blocking: a plain copy from
    pageable memory waits for the device's queued work, a sync per step."""
    if device.type != "cuda":
        return tensor.to(device)
    return (tensor if tensor.is_pinned() else tensor.pin_memory()).to(device, non_blocking=True)


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
