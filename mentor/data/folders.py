"""ImageFolder datasets: ``root/<split>/<class>/*`` of any PIL-readable images.

Images are decoded once (in threads: PIL releases the GIL while decoding) and cached as a
.npz array file under the cache folder (``MENTOR_CACHE`` or ~/.cache/mentor), keyed by the
file list, sizes, modification times and options, so the second load takes a second.
A .tar / .tar.gz of such a folder is extracted once, safely, into the cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from ..registry import DATASETS
from .arrays import ArrayDataset
from .files import safe_extract, write_atomically

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_VERSION = 1


def cache_dir() -> str:
    return os.environ.get("MENTOR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mentor")


def has_image_folder_layout(root: str, splits: Sequence[str] = ("train", "test")) -> bool:
    return all(os.path.isdir(os.path.join(root, s)) for s in splits)


def _list_split(root: str, split: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise DataError(f"image folder {root} has no {split}/ folder (layout: root/<split>/<class>/<image>)")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
                     and not d.startswith("."))
    if not classes:
        raise DataError(f"{folder} has no class folders (layout: root/<split>/<class>/<image>)")
    files = []
    for label, name in enumerate(classes):
        class_dir = os.path.join(folder, name)
        for file in sorted(os.listdir(class_dir)):
            if not file.startswith(".") and os.path.isfile(os.path.join(class_dir, file)):
                files.append((os.path.join(class_dir, file), label))
    if not files:
        raise DataError(f"{folder} holds no image files")
    return classes, files


def _decode(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.mode, image.copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image file {path}: {exc}") from None


def _decode_all(files: List[Tuple[str, int]], size: Optional[Tuple[int, int]], progress: bool):
    """uint8 (n, C, H, W) of the files, all in one colour mode; mixed modes are converted to RGB
    (or L when every image is grayscale) with a warning that says how many were converted."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        decoded = list(tqdm(pool.map(_decode, [f for f, _ in files], chunksize=64), total=len(files),
                            desc="decoding images", disable=None if progress else True, leave=False))
    modes = [m for m, _ in decoded]
    gray = {"L", "1", "I", "I;16", "F"}
    target = "L" if all(m in gray for m in modes) else "RGB"
    converted = sum(m != target for m in modes)
    if converted:
        counts = {m: modes.count(m) for m in sorted(set(modes)) if m != target}
        warnings.warn(f"converted {converted} image(s) to {target} (modes {counts}); "
                      "RGBA images lose their alpha channel", stacklevel=3)
    arrays = []
    first_size = decoded[0][1].size
    for (path, _), (_, image) in zip(files, decoded):
        image = image.convert(target)
        if size is not None:
            image = image.resize((size[1], size[0]))
        elif image.size != first_size:
            raise DataError(f"images differ in size: {path} is {image.size[0]}x{image.size[1]} but "
                            f"{files[0][0]} is {first_size[0]}x{first_size[1]}; pass --data-hp size=H,W to resize")
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return np.stack(arrays)


def _cache_key(root: str, files, options: dict) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, os.path.abspath(root), options]).encode())
    for path, label in files:
        stat = os.stat(path)
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]




def _resolve_root(path: str) -> str:
    """A folder as given; an archive extracted once into the cache; descend a lone top folder."""
    if os.path.isfile(path) and path.endswith(ARCHIVE_SUFFIXES):
        stat = os.stat(path)
        tag = hashlib.sha256(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        dest = os.path.join(cache_dir(), f"extracted-{tag}")
        if not os.path.isdir(dest):
            safe_extract(path, dest)
        path = dest
    if not os.path.isdir(path):
        raise DataError(f"image folder not found: {path}")
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(path, entries[0])) and not has_image_folder_layout(path):
        path = os.path.join(path, entries[0])
    return path


def load_image_folder(path: str, train_split: str = "train", test_split: str = "test",
                      size: Optional[Sequence[int]] = None, expect_classes: Optional[int] = None,
                      hflip: bool = True, augment_set: str = "cifar", progress: bool = True) -> ArrayDataset:
    root = _resolve_root(path)
    size = None if size is None else (int(size[0]), int(size[1]))
    classes, train_files = _list_split(root, train_split)
    test_classes, test_files = _list_split(root, test_split)
    if test_classes != classes:
        raise DataError(f"{root}: {test_split}/ has classes {test_classes} but {train_split}/ has {classes}")
    if expect_classes is not None and len(classes) != expect_classes:
        raise DataError(f"{root} has {len(classes)} class folders, expected {expect_classes}")
    options = {"size": size, "train": train_split, "test": test_split}
    cache = os.path.join(cache_dir(), f"image_folder-{_cache_key(root, train_files + test_files, options)}.npz")
    if os.path.isfile(cache):
        with np.load(cache) as saved:
            x_train, y_train, x_test, y_test = (saved[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    else:
        x_all = _decode_all(train_files + test_files, size, progress)
        x_train, x_test = x_all[:len(train_files)], x_all[len(train_files):]
        y_train = np.array([label for _, label in train_files], dtype=np.int64)
        y_test = np.array([label for _, label in test_files], dtype=np.int64)
        write_atomically(cache, lambda f: np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
    # Files are listed class by class, so the order carries no meaning: the mpl protocol refuses it.
    return ArrayDataset("image_folder", x_train, y_train, x_test, y_test, len(classes),
                        hflip=hflip, augment_set=augment_set, ordered=False)


@DATASETS.register("image_folder")
def load_image_folder_dataset(path: Optional[str], seed: int = 0, train_split: str = "train",
                              test_split: str = "test", size: Optional[Sequence[int]] = None,
                              hflip: bool = True, augment_set: str = "cifar") -> ArrayDataset:
    """root/<split>/<class>/* of PIL-readable images, or a .tar/.tar.gz of such a folder."""
    if not path:
        raise DataError("dataset 'image_folder' needs --data-path: a folder root/<split>/<class>/* or its .tar.gz")
    return load_image_folder(path, train_split, test_split, size, hflip=hflip, augment_set=augment_set)
