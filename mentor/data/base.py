"""The interface every data source gives the trainer, written once: what a new source must provide.

A **Dataset** holds a training set (labels ``y_train``, examples by index through ``take_train``,
-1 marking a training example without a label), a test split, and optionally extra unlabeled
examples; it hands the trainer the unlabeled pool and the test split as **Pools**. Two kinds
exist today: arrays in memory (mentor.data.arrays.ArrayDataset, and the cached embeddings of
mentor.embedding.EmbeddedDataset) and WebDataset shards on disk (mentor.data.shards.dataset.ShardDataset).
A loader registered in mentor.registry.DATASETS returns one; the trainer, compare and the
pipelines read nothing else of it.

What a run records of its inputs (mentor.data.fingerprint) is computed from the paths its config
names, so every source that reads files gets the resume guard without code of its own.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np


@runtime_checkable
class Pool(Protocol):
    """Stored examples in a fixed order: the unlabeled pool, the test split, a pool to pseudo-label.

    ``streamed``: read from disk as drawn (then ``x`` and ``y`` are None) or held in memory (``x``:
    the examples, ``y``: their labels where known, as tensors on the training device).
    ``name``: what the pool is, for messages and for a labels folder's manifest."""

    streamed: bool
    name: str
    x: object
    y: object

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Examples start..stop, as stored (uint8 images, float rows)."""

    def read_ahead(self, ranges: Iterable[Tuple[int, int]]) -> Iterator[np.ndarray]:
        """``read`` of each range in turn (a streamed pool decodes ahead in worker processes)."""


@runtime_checkable
class Dataset(Protocol):
    """A labeled training set, a test split and an unlabeled pool, as the trainer reads them.

    Attributes: ``name``; ``num_classes``; ``class_names`` (label k is class_names[k], or None);
    ``y_train`` (int labels, -1 for an unlabeled training example); ``input_shape`` and
    ``is_image``; ``hflip`` and ``augment_set`` (images: the views' flips and RandAugment op set);
    ``ordered`` (the training order is the official one, for the mpl split); ``x_unlabeled``
    (extra examples held in memory, or None); ``streamed`` (the pool and test split stream from
    disk); ``workers`` (decoding processes per rank, 0 in memory); ``cached_views`` ((weak,
    strong) views cached per example, or None: views are made at each step); ``embedding`` (how
    cached embeddings were made, or None); ``feature_columns``, ``feature_scaling`` and
    ``source_rows`` (a file's columns, scaling and which rows went where, or None)."""

    name: str
    num_classes: int
    class_names: Optional[List[str]]
    y_train: np.ndarray
    hflip: bool
    augment_set: str
    ordered: bool
    x_unlabeled: Optional[np.ndarray]
    streamed: bool
    workers: int
    cached_views: Optional[tuple]
    embedding: Optional[dict]
    feature_columns: Optional[List[str]]
    feature_scaling: Optional[dict]
    source_rows: Optional[dict]

    @property
    def input_shape(self) -> tuple: ...

    @property
    def is_image(self) -> bool: ...

    def take_train(self, indices: Sequence[int]) -> np.ndarray:
        """Stored training examples by index."""

    def channel_stats(self, labeled: Optional[Sequence[int]] = None) -> tuple:
        """Images: per-channel (mean, std) in [0, 1] units, for standardising."""

    def unlabeled_pool(self, split, device) -> Pool:
        """The split's unlabeled pool (split.unlabeled, or the streamed pool it describes)."""

    def test_pool(self, device, eval_data=None) -> Pool:
        """The test split with its labels (``eval_data`` = (x, y) in its place)."""


class PoolDefaults:
    """What a pool held in memory answers where it has nothing of its own to say."""

    streamed = False
    name = "pool"
    x = None
    y = None

    def read_ahead(self, ranges: Iterable[Tuple[int, int]]) -> Iterator[np.ndarray]:
        return (self.read(start, stop) for start, stop in ranges)
