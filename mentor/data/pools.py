"""The unlabeled pool and the test split as the trainer sees them, held in memory (the streamed
ones, from shards: mentor.data.shards.pool). Both are ``Pool``s: a length, ``read(start, stop)`` (stored examples in order, for
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

import os
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .base import PoolDefaults
from ..errors import DataError


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
