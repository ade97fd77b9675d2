"""What `mentor shards` writes shards from: a built-in dataset, a .npz / .npy array, a CSV of
image paths and labels, or an image folder. Every source is read lazily, in a fixed order
(so a killed writer, started again, skips exactly what it wrote), and files already encoded as
PNG or JPEG are stored as they are, not decoded and re-encoded.
"""
from __future__ import annotations

import csv
import os
import warnings
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ...errors import DataError
from ..sources.folders import IMAGE_SUFFIXES, UNLABELED, scan_folder
from .write import write_shards

STORED_AS_IS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}


def _file_sample(path: str) -> Tuple[bytes, str, str]:
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise DataError(f"image file {path} is empty (0 bytes); remove it or replace it")
    if ext in STORED_AS_IS:
        return data, STORED_AS_IS[ext], path
    from .format import decode_image, encode_image
    return encode_image(decode_image(data, path, 3, None), "png"), "png", path


def _files(paths_labels: List[Tuple[str, int]]) -> Iterator[Tuple[object, int]]:
    for path, label in paths_labels:
        if not os.path.isfile(path):
            raise DataError(f"image file not found: {path}")
        yield _file_sample(path), label


def _array_rows(x, y=None) -> Iterator[Tuple[np.ndarray, int]]:
    for start in range(0, len(x), 4096):
        chunk = np.asarray(x[start:start + 4096])
        for i, image in enumerate(chunk):
            yield image, -1 if y is None else int(y[start + i])


def _image_array(x: np.ndarray, where: str) -> None:
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise DataError(f"{where}: shards hold images: need a uint8 array (N, C, H, W), (N, H, W, C) or (N, H, W), "
                        f"got {x.dtype} of shape {x.shape}")


def csv_rows(path: str) -> List[Tuple[str, int]]:
    """(file, label) of a CSV with a column 'path' (relative to the CSV's folder) and an optional
    column 'label' (a class index; empty: unlabeled)."""
    if not os.path.isfile(path):
        raise DataError(f"CSV file not found: {path}")
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise DataError(f"{path} needs a column 'path' (and optionally 'label'); its columns: {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            try:
                rows.append((os.path.join(base, row["path"]), int(label) if label else -1))
            except ValueError:
                raise DataError(f"{path} line {line}: label {label!r} is not a class index") from None
    return rows


def shard_source(out: str, name: Optional[str] = None, dataset: Optional[str] = None,
                 data_path: Optional[str] = None, source: Optional[str] = None, shard_size: int = 10000,
                 encoding: str = "png", progress: bool = True) -> Dict[str, dict]:
    """Write the shards of a dataset or a file/folder into ``out``; one set per split, named
    NAME-train, NAME-test, NAME-unlabeled (a lone unlabeled or labeled source: NAME). An image
    folder is read as mentor.data.sources.folders.scan_folder lays it out. Returns
    {set name: manifest}."""
    if (dataset is None) == (source is None):
        raise DataError("give either --dataset NAME (a built-in dataset) or --from PATH (a folder, .npz, .npy or .csv)")
    written = {}

    from ..fingerprint import path_fingerprint

    origin = {"dataset": dataset, "data_path": data_path and path_fingerprint(data_path)} if dataset is not None \
        else {"from": path_fingerprint(source)}

    def write(set_name, samples, total, class_names=None, num_classes=None):
        written[set_name] = write_shards(samples, out, set_name, shard_size, encoding, total=total,
                                         class_names=class_names, num_classes=num_classes, progress=progress,
                                         source=origin)

    if dataset is not None:
        from ..sources import load_dataset

        ds = load_dataset(dataset, data_path)
        if not ds.is_image:
            raise DataError(f"dataset {dataset!r} holds features, not images; shards hold images")
        name = name or dataset
        write(f"{name}-train", _array_rows(ds.x_train, ds.y_train), len(ds.x_train), ds.class_names, ds.num_classes)
        write(f"{name}-test", _array_rows(ds.x_test, ds.y_test), len(ds.x_test), ds.class_names, ds.num_classes)
        if ds.x_unlabeled is not None and len(ds.x_unlabeled):
            write(f"{name}-unlabeled", _array_rows(ds.x_unlabeled), len(ds.x_unlabeled))
        return written
    name = name or os.path.splitext(os.path.basename(os.path.normpath(source)))[0]
    if source.endswith(".npy"):
        from ..pools import NpyPool

        pool = NpyPool(source)
        _image_array(np.zeros((0,) + pool.shape[1:], pool.dtype), source)
        rows = (image for start in range(0, len(pool), 4096) for image in pool.read(start, start + 4096))
        write(name, ((image, -1) for image in rows), len(pool))
    elif source.endswith(".npz"):
        from ..sources import load_npz

        ds = load_npz(source)
        for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test),
                            ("unlabeled", ds.x_unlabeled, None)):
            if x is not None and len(x):
                _image_array(x, f"{source}: x_{split}")
                write(f"{name}-{split}", _array_rows(x, y), len(x), num_classes=ds.num_classes if y is not None else None)
    elif source.endswith(".csv"):
        rows = csv_rows(source)
        write(name, _files(rows), len(rows))
    else:
        layout = scan_folder(source)
        said = layout.ignored_line()
        if said:
            warnings.warn(said, stacklevel=2)
        splits = dict(layout.splits)
        if layout.unlabeled:
            splits[UNLABELED] = [(path, -1) for path in layout.unlabeled]
        if not splits:
            raise DataError(f"{source} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
        for split, rows in splits.items():
            labeled = split != UNLABELED
            write(name if len(splits) == 1 else f"{name}-{split}", _files(rows), len(rows),
                  class_names=layout.classes if labeled else None, num_classes=len(layout.classes) if labeled else None)
    return written
