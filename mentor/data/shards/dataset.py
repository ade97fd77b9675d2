"""``--dataset shards``: a training set, an optional extra unlabeled pool and a test split, each a
set of WebDataset shards (mentor.data.shards). The labels of the training shards are read (one
int per sample); the labeled and held-out images are decoded into memory; the unlabeled pool
and the test split stay on disk and stream (mentor.data.shards.pool.ShardPool).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ...errors import DataError
from ...registry import DATASETS
from ..sources.folders import image_size
from .pool import ShardPool, default_workers
from .format import ShardSet


@dataclass
class ShardDataset:
    """What the trainer asks of a dataset, with the examples on disk. ``streamed``: the
    unlabeled pool and the test split are read as they are drawn (``pool`` and ``test_pool``)."""

    train: ShardSet
    test: ShardSet
    unlabeled: Optional[ShardSet]
    num_classes: int
    window: int = 8
    workers: int = 0
    hflip: bool = True
    augment_set: str = "cifar"
    name: str = "shards"
    ordered: bool = False
    class_names: Optional[List[str]] = None
    feature_columns = None
    feature_scaling = None
    source_rows = None
    x_unlabeled = None  # the extra pool is streamed, not an array
    streamed = True
    is_image = True
    cached_views = None  # views are made at each step
    embedding = None

    @property
    def y_train(self) -> np.ndarray:
        return self.train.labels

    @property
    def y_test(self) -> np.ndarray:
        return self.test.labels

    @property
    def input_shape(self):
        return self.train.shape

    def take_train(self, indices: Sequence[int]) -> np.ndarray:
        return self.train.images(np.asarray(indices, dtype=np.int64))

    def unlabeled_pool(self, split, device=None) -> ShardPool:
        """The split's pool: every training and extra sample but the held-out ones, streamed."""
        return self.pool(np.asarray(split.streamed_pool["excluded"], dtype=np.int64))

    def pool(self, excluded: np.ndarray) -> ShardPool:
        sets = [self.train] + ([self.unlabeled] if self.unlabeled is not None else [])
        return ShardPool(sets, excluded=excluded, window=self.window, name="unlabeled pool", workers=self.workers)

    def test_pool(self, device=None, eval_data=None) -> ShardPool:
        if eval_data is not None:
            raise DataError("eval_data replaces an in-memory test split; a shards dataset has --test-path")
        return ShardPool([self.test], window=self.window, name="test split", workers=self.workers)

    def channel_stats(self, labeled: np.ndarray):
        """The training images' per-channel mean and std in [0, 1] units: the manifest's (every
        image, counted when written) or, for shards written elsewhere, the labeled images'."""
        manifest = self.train.manifest
        if manifest.get("channel_mean") is not None:
            return (tuple(float(v) for v in manifest["channel_mean"]),
                    tuple(float(max(v, 1e-3)) for v in manifest["channel_std"]))
        from ...augment.views import channel_stats
        return channel_stats(self.take_train(labeled))


@DATASETS.register("shards")
def load_shards(path: Optional[str], seed: int = 0, unlabeled_path: Optional[str] = None,
                test_path: Optional[str] = None, size=None, window: int = 8, workers: Optional[int] = None,
                cache: int = 8, hflip: bool = True, augment_set: str = "cifar") -> ShardDataset:
    """WebDataset shards: ``path`` the labeled training shards ('train-{000000..000009}.tar', a
    glob, or the NAME.json manifest), ``unlabeled_path`` an extra unlabeled pool, ``test_path``
    the test split. Options (--data-hp): ``size=H,W`` resizes every image (needed when they
    differ), ``window`` shards read together by the shuffled stream, ``workers`` decoding
    processes per rank (default: up to 4), ``cache`` open shards per reader, ``hflip`` and
    ``augment_set`` as for other image datasets."""
    if not path:
        raise DataError("dataset 'shards' needs --data-path: the training shards, e.g. 'train-{000000..000009}.tar'")
    if not test_path:
        raise DataError("dataset 'shards' needs --test-path: the test split's shards (make them with `mentor shards`)")
    size = image_size(size)
    train = ShardSet(path, size=size, cache=cache)
    test = ShardSet(test_path, size=size, cache=cache)
    unlabeled = ShardSet(unlabeled_path, size=size, cache=cache) if unlabeled_path else None
    y = train.labels
    if (y < 0).all():
        raise DataError(f"the training shards {path} hold no labels (.cls): give labeled shards as --data-path "
                        "and the unlabeled ones as --unlabeled-path")
    if (y < 0).any():
        raise DataError(f"{int((y < 0).sum())} sample(s) of the training shards {path} have no label (.cls); "
                        "put unlabeled samples in their own shards and pass them as --unlabeled-path")
    if (test.labels < 0).any():
        raise DataError(f"{int((test.labels < 0).sum())} sample(s) of the test shards {test_path} have no label (.cls)")
    num_classes = int(max(train.num_classes or 0, int(y.max()) + 1, int(test.labels.max()) + 1))
    for name, shard_set in (("test", test), ("unlabeled", unlabeled)):
        if shard_set is not None and shard_set.shape != train.shape:
            raise DataError(f"the {name} shards hold {shard_set.shape} images, the training shards {train.shape}; "
                            "pass --data-hp size=H,W to resize them to one size")
    return ShardDataset(train, test, unlabeled, num_classes, window=int(window),
                        workers=default_workers() if workers is None else int(workers), hflip=bool(hflip),
                        augment_set=augment_set, class_names=train.class_names)
