"""In-memory datasets and the checks every dataset passes before training starts."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional

import numpy as np

from ..errors import DataError


@dataclass
class ArrayDataset:
    """Features and integer labels held in memory.

    x_unlabeled holds extra examples without labels; they join the unlabeled pool.
    Images are uint8 arrays of shape (n, channels, height, width); they stay uint8 (4x less
    memory on the device) and become floats in [0, 1] inside the augmentation pipeline.
    Image metadata: ``hflip`` (False for digits: a mirrored 3 is no digit), ``augment_set``
    (the RandAugment op set, MPL Table 5) and ``ordered`` (the training order is the
    official one, which the ``mpl`` split protocol needs).
    What a trained model needs to take raw inputs (saved with each run, see mentor.inference):
    ``class_names`` (label values of the source, class k = class_names[k]), ``feature_columns``
    (a table's feature columns, in order) and ``feature_scaling`` ({"mean", "std"}: the stored
    features are (raw - mean) / std). ``source_rows``: which rows of a source file became the
    training, test and unlabeled examples (saved in split.json).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    x_unlabeled: Optional[np.ndarray] = None
    hflip: bool = True
    augment_set: str = "cifar"
    ordered: bool = True
    class_names: Optional[List[str]] = None
    feature_columns: Optional[List[str]] = None
    feature_scaling: Optional[dict] = None
    source_rows: Optional[dict] = None

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    # What the trainer asks of any dataset (the same as of a ShardDataset, whose examples are on disk).
    streamed = False
    workers = 0
    # (weak, strong) views cached per example (mentor.embedding's EmbeddedDataset), or None: the
    # views are made at each step
    cached_views = None
    embedding = None  # how cached embeddings were made (mentor.embedding.EmbeddedDataset), or None

    def take_train(self, indices) -> np.ndarray:
        """Stored training examples by index."""
        return self.x_train[np.asarray(indices, dtype=np.int64)]

    def channel_stats(self, labeled=None) -> tuple:
        """The training images' per-channel mean and std in [0, 1] units (for standardising)."""
        from ..augment.views import channel_stats
        return channel_stats(self.x_train)

    def unlabeled_pool(self, split, device):
        """The split's unlabeled examples (training set, then x_unlabeled) on ``device``."""
        import torch

        from .pools import MemoryPool
        pool = self.x_train if self.x_unlabeled is None else np.concatenate([self.x_train, self.x_unlabeled])
        return MemoryPool(torch.as_tensor(pool[split.unlabeled], device=device), list(split.unlabeled))

    def test_pool(self, device, eval_data=None):
        """The test split (or ``eval_data`` = (x, y) in its place) on ``device``, with its labels."""
        import torch

        from .pools import MemoryPool
        x, y = eval_data if eval_data is not None else (self.x_test, self.y_test)
        return MemoryPool(torch.as_tensor(canonical_features(np.asarray(x)), device=device),
                          y=torch.as_tensor(np.asarray(y, dtype=np.int64), device=device))


def canonical_features(x: np.ndarray) -> np.ndarray:
    """uint8 images stay uint8; everything else becomes float32."""
    if x.dtype == np.uint8 and x.ndim == 4:
        return x
    return x.astype(np.float32, copy=False)


def _check_features(name: str, x: np.ndarray) -> None:
    if x.ndim < 2:
        raise DataError(f"{name} must have shape (n, features...), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name} must be numeric, got dtype {x.dtype}")
    if x.ndim == 4 and x.shape[1] not in (1, 3):
        raise DataError(f"{name}: images must be laid out (n, channels, height, width) with 1 or 3 "
                        f"channels, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, bool)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{name} has NaN or infinite values in {len(rows)} row(s), first at index {rows[0]}"
        )


def _check_labels(name: str, y: np.ndarray, n: int, num_classes: int) -> None:
    if y.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{name} has {len(y)} labels but the features have {n} rows")
    if len(y) == 0:
        return
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    lo, hi = y.min(), y.max()
    if lo < 0 or hi >= num_classes:
        raise DataError(
            f"{name} has labels in [{int(lo)}, {int(hi)}] but classes must be 0..{num_classes - 1}"
        )


def validate_dataset(ds: ArrayDataset) -> ArrayDataset:
    """Raise DataError naming the first problem found; return the dataset with canonical dtypes."""
    if ds.num_classes < 2:
        raise DataError(f"dataset {ds.name!r} needs at least 2 classes, got {ds.num_classes}")
    _check_features("x_train", ds.x_train)
    _check_features("x_test", ds.x_test)
    if len(ds.x_train) == 0:
        raise DataError("x_train is empty")
    if len(ds.x_test) == 0:
        raise DataError("x_test is empty")
    _check_labels("y_train", ds.y_train, len(ds.x_train), ds.num_classes)
    _check_labels("y_test", ds.y_test, len(ds.x_test), ds.num_classes)
    # Cached views (mentor.embedding): (1 + 2K, dim) stacks for training, the clean (1, dim) for the test.
    row = slice(2, None) if ds.cached_views else slice(1, None)
    if ds.x_test.shape[row] != ds.x_train.shape[row]:
        raise DataError(
            f"x_test rows have shape {ds.x_test.shape[1:]} but x_train rows have {ds.x_train.shape[1:]}"
        )
    x_unlabeled = ds.x_unlabeled
    if x_unlabeled is not None:
        if len(x_unlabeled):
            _check_features("x_unlabeled", x_unlabeled)
            if x_unlabeled.shape[1:] != ds.x_train.shape[1:]:
                raise DataError(
                    f"x_unlabeled rows have shape {x_unlabeled.shape[1:]} "
                    f"but x_train rows have {ds.x_train.shape[1:]}"
                )
        x_unlabeled = canonical_features(x_unlabeled)
        if len(x_unlabeled) and (x_unlabeled.dtype == np.uint8) != (canonical_features(ds.x_train).dtype == np.uint8):
            raise DataError(f"x_unlabeled is {x_unlabeled.dtype} but x_train is {ds.x_train.dtype}: "
                            "give images to both as uint8, or features to both as floats")
    if ds.class_names is not None and len(ds.class_names) != ds.num_classes:
        raise DataError(f"dataset {ds.name!r} names {len(ds.class_names)} classes but has {ds.num_classes}")
    return replace(
        ds,
        x_train=canonical_features(ds.x_train),
        y_train=ds.y_train.astype(np.int64, copy=False),
        x_test=canonical_features(ds.x_test),
        y_test=ds.y_test.astype(np.int64, copy=False),
        num_classes=int(ds.num_classes),
        x_unlabeled=x_unlabeled,
    )


def input_spec(ds) -> dict:
    """What any model trained on ``ds`` (an ArrayDataset or a ShardDataset) needs to take raw
    inputs: the input shape, the classes and their names, a table's columns and scaling, and for
    cached embeddings the backbone that makes them from images. The base of a run's
    inference.json (the trainer adds the network and the image statistics)."""
    spec = {"format": 1, "dataset": ds.name, "kind": "image" if ds.is_image else "features",
            "input_shape": list(ds.input_shape), "num_classes": ds.num_classes, "class_names": ds.class_names,
            "feature_columns": ds.feature_columns, "feature_scaling": ds.feature_scaling}
    embedding = ds.embedding
    if embedding:  # raw inputs are images, embedded by the backbone before the trained model
        spec.update(kind="image", dataset=embedding["source"], input_shape=embedding["image_shape"],
                    image_mean=embedding["image_mean"], image_std=embedding["image_std"],
                    embedding={k: embedding[k] for k in ("model", "pretrained", "resolution", "dim")})
    return spec
