"""Built-in dataset loaders, registered by name.

Every loader has the signature ``load(path, seed, **options) -> ArrayDataset``.
"""
from __future__ import annotations

import os
import zipfile
from typing import Optional

import numpy as np

from ...errors import DataError
from ...options import check_option_types
from ...registry import DATASETS
from ..arrays import ArrayDataset


def read_npz(path: str) -> dict:
    """Every array of a .npz archive, numeric ones only (no pickles); a DataError naming the
    problem otherwise."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a .npz archive (a zip of .npy arrays, as np.savez writes): damaged, or "
                        "another kind of file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path} holds object (pickled) arrays, which mentor does not load; save numeric "
                            "arrays (np.savez(path, x_train=..., ...) with number dtypes)") from None
        raise DataError(f"cannot read {path} as a .npz archive: {exc}") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as a .npz archive: {exc}") from None


@DATASETS.register("npz")
def load_npz(path: Optional[str], seed: int = 0, num_classes: Optional[int] = None) -> ArrayDataset:
    """Arrays in a NumPy .npz file: x_train, y_train, x_test, y_test, optionally x_unlabeled."""
    if not path:
        raise DataError("dataset 'npz' needs --data-path pointing to a .npz file")
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}")
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the array(s) {', '.join(missing)}; found {sorted(arrays)}")
    y_all = np.concatenate([arrays["y_train"].ravel(), arrays["y_test"].ravel()])
    if num_classes is None:
        if y_all.size == 0 or not np.issubdtype(y_all.dtype, np.number):
            raise DataError(f"{path}: cannot infer the number of classes from the labels")
        finite = y_all[np.isfinite(y_all)] if np.issubdtype(y_all.dtype, np.floating) else y_all
        # Non-integer or out-of-range labels are reported by validate_dataset with their values.
        num_classes = max(int(finite.max()) + 1, 2) if finite.size else 2
        labels = np.unique(finite[finite >= 0])
        if labels.size and np.all(labels == np.round(labels)) and labels.size < num_classes:
            shown = ", ".join(f"{v:g}" for v in labels[:5]) + (", ..." if labels.size > 5 else "")
            raise DataError(f"{path}: the labels are {shown} ({labels.size} distinct values), but classes are "
                            f"numbered 0..C-1, so {num_classes - labels.size} of the classes 0..{num_classes - 1} "
                            "have no example; renumber the labels (np.unique(y, return_inverse=True)) or give "
                            "--data-hp num_classes=N")
    return ArrayDataset(
        name="npz",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        num_classes=num_classes,
        x_unlabeled=arrays.get("x_unlabeled"),
    )


def make_two_moons(n: int, noise: float, seed: int):
    """Two interleaving half circles of n/2 points each (scikit-learn's make_moons)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return x.astype(np.float32), y.astype(np.int64)


@DATASETS.register("two_moons")
def load_two_moons(path: Optional[str] = None, seed: int = 0, n: int = 2000, noise: float = 0.1) -> ArrayDataset:
    """MPL section 3.1: 2,000 points in two moons of 1,000. The test set is a fresh draw."""
    x, y = make_two_moons(n, noise, seed)
    x_test, y_test = make_two_moons(n, noise, seed + 1_000_003)
    return ArrayDataset("two_moons", x, y, x_test, y_test, num_classes=2)


@DATASETS.register("digits")
def load_digits(path: Optional[str] = None, seed: int = 0, test_fraction: float = 0.25) -> ArrayDataset:
    """scikit-learn's 1,797 8x8 digit images as 64 features scaled to [0, 1], seeded stratified test split."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=test_fraction, stratify=bunch.target, random_state=seed
    )
    # Raw inputs are the 0-16 pixel counts: inference.json keeps the scaling, so predict takes them as they are.
    width = x.shape[1]
    return ArrayDataset("digits", x_train, y_train, x_test, y_test, num_classes=10,
                        feature_scaling={"mean": [0.0] * width, "std": [16.0] * width})


def _bundled_table(name: str, loader, seed: int, test_fraction: float) -> ArrayDataset:
    """A table bundled with scikit-learn: seeded stratified train/test split, features standardised
    with the training split's mean and std (the test split never informs the scaling)."""
    from sklearn.model_selection import train_test_split

    bunch = loader()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data.astype(np.float64), bunch.target, test_size=test_fraction, stratify=bunch.target,
        random_state=seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    scale = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    return ArrayDataset(name, scale(x_train), y_train, scale(x_test), y_test,
                        num_classes=int(bunch.target.max()) + 1,
                        feature_scaling={"mean": mean.tolist(), "std": std.tolist()})  # for raw rows at predict


@DATASETS.register("wine")
def load_wine(path: Optional[str] = None, seed: int = 0, test_fraction: float = 0.25) -> ArrayDataset:
    """scikit-learn's wine recognition table: 178 wines, 13 chemical measurements, 3 cultivars."""
    from sklearn.datasets import load_wine as sk_load_wine

    return _bundled_table("wine", sk_load_wine, seed, test_fraction)


@DATASETS.register("breast_cancer")
def load_breast_cancer(path: Optional[str] = None, seed: int = 0, test_fraction: float = 0.25) -> ArrayDataset:
    """scikit-learn's Wisconsin diagnostic breast cancer table: 569 tumours, 30 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer as sk_load_breast_cancer

    return _bundled_table("breast_cancer", sk_load_breast_cancer, seed, test_fraction)


def load_dataset(name: str, path: Optional[str] = None, seed: int = 0, **options) -> ArrayDataset:
    import inspect

    from ..arrays import validate_dataset

    loader = DATASETS.get(name)
    parameters = inspect.signature(loader).parameters
    valid = [p for p, v in parameters.items() if p not in ("path", "seed") and v.kind != v.VAR_KEYWORD]
    unknown = sorted(set(options) - set(valid))
    if unknown and not any(v.kind == v.VAR_KEYWORD for v in parameters.values()):
        raise DataError(f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
                        f"{', '.join(valid) or '(none)'}")
    defaults = {p: v.default for p, v in parameters.items() if v.default is not v.empty}
    options = check_option_types(f"dataset {name!r}: --data-hp", options, defaults)
    dataset = loader(path, seed=seed, **options)
    # Streamed datasets (--dataset shards) check their shards as they open them.
    return validate_dataset(dataset) if isinstance(dataset, ArrayDataset) else dataset
