"""Image folders: ``root/<class>/*`` or ``root/<split>/<class>/*`` of image files.

    photos/cat/*.jpg  photos/dog/*.jpg          labeled; a seeded stratified 20% is the test split
    photos/train/<class>/*  photos/test/<class>/*   labeled, with its own test split
    photos/unlabeled/**  photos/*.jpg  photos/train/*.jpg  --unlabeled-path DIR   the unlabeled pool

Class-less images (a root/unlabeled/ folder, image files directly under root or train/, a
folder given as ``unlabeled_path``) join the unlabeled pool; which file went where is saved
with each run (split.json, ``dataset_rows``), and files left out (not images, images in test/
outside a class folder, folders that are no split) are said with their counts.

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
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import DataError
from ...registry import DATASETS
from ..arrays import ArrayDataset
from ...files import safe_extract, write_atomically
from ..splits import TEST_FRACTION, stratified_hold_out

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_VERSION = 2  # 2: one array of every listed file, unlabeled ones included


def cache_dir() -> str:
    return os.environ.get("MENTOR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mentor")


def has_image_folder_layout(root: str, splits: Sequence[str] = ("train", "test")) -> bool:
    return all(os.path.isdir(os.path.join(root, s)) for s in splits)


# What counts as an image file; anything else in a folder is left out and counted
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
UNLABELED = "unlabeled"  # root/unlabeled/: images without a class
NOT_IMAGES = f"file(s) that are not images ({', '.join(IMAGE_SUFFIXES)})"


@dataclass
class FolderLayout:
    """What an image folder holds. ``splits``: {split: [(file, class index)]} of the labeled images
    (root/<split>/<class>/* gives train, test, val, ...; root/<class>/* gives train alone);
    ``classes``: the class folder names, in label order; ``unlabeled``: the images without a
    class (root/unlabeled/, images directly under root or under train/, at any depth);
    ``ignored``: {why: count} of the files left out."""

    root: str
    classes: List[str]
    splits: Dict[str, List[Tuple[str, int]]]
    unlabeled: List[str]
    ignored: Dict[str, int] = field(default_factory=dict)

    def ignored_line(self) -> Optional[str]:
        if not self.ignored:
            return None
        return f"{self.root}: left out " + "; ".join(f"{n} {why}" for why, n in self.ignored.items())


def image_size(value) -> Optional[Tuple[int, int]]:
    """--data-hp size: H,W (or HxW, or one number for a square) as (H, W), or a DataError naming it."""
    if value is None:
        return None
    parts = [value, value] if isinstance(value, (int, float)) else \
        value.replace("x", ",").split(",") if isinstance(value, str) else list(value)
    try:
        height, width = (int(p) for p in parts)
        if height < 1 or width < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"--data-hp size={value!r}: give the images' height and width, H,W (e.g. size=32,32)") from None
    return height, width


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _visible(folder: str, dirs: bool) -> List[str]:
    return sorted(e for e in os.listdir(folder) if not e.startswith(".")
                  and os.path.isdir(os.path.join(folder, e)) == dirs)


def _images_under(folder: str, ignored: Dict[str, int]) -> List[str]:
    """Every image file under ``folder`` at any depth, in a fixed order; other files counted."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            if _is_image(name):
                found.append(os.path.join(here, name))
            else:
                ignored[NOT_IMAGES] = ignored.get(NOT_IMAGES, 0) + 1
    return found


def _loose_images(folder: str, ignored: Dict[str, int]) -> List[str]:
    """The image files directly in ``folder`` (no subfolders); other files counted."""
    files = _visible(folder, dirs=False)
    others = sum(not _is_image(f) for f in files)
    if others:
        ignored[NOT_IMAGES] = ignored.get(NOT_IMAGES, 0) + others
    return [os.path.join(folder, f) for f in files if _is_image(f)]


def _class_files(folder: str, classes: List[str], ignored: Dict[str, int]) -> List[Tuple[str, int]]:
    files = []
    for label, name in enumerate(classes):
        found = _images_under(os.path.join(folder, name), ignored)
        if not found:
            raise DataError(f"class folder {os.path.join(folder, name)} holds no image file "
                            f"({', '.join(IMAGE_SUFFIXES)}); remove it or add its images")
        files += [(path, label) for path in found]
    return files


SPLIT_NAMES = ("train", "test", "val")


def scan_folder(root: str, unlabeled_path: Optional[str] = None) -> FolderLayout:
    """The layout of an image folder (see FolderLayout): root/<split>/<class>/* when root has a
    train/ folder, else root/<class>/*; class-less images (root/unlabeled/, loose files at root or
    in train/, and ``unlabeled_path``: a folder of images at any depth) are the unlabeled ones."""
    if not os.path.isdir(root):
        raise DataError(f"image folder not found: {root}")
    ignored: Dict[str, int] = {}
    subdirs = [d for d in _visible(root, dirs=True) if d != UNLABELED]
    splits: Dict[str, List[Tuple[str, int]]] = {}
    unlabeled = _loose_images(root, ignored)
    if "train" in subdirs:
        others = [d for d in subdirs if d not in SPLIT_NAMES]
        if others:
            ignored[f"folder(s) beside train/ that are no split ({', '.join(others[:3])})"] = len(others)
        classes = _visible(os.path.join(root, "train"), dirs=True)
        if not classes:
            raise DataError(f"{os.path.join(root, 'train')} has no class folders (layout: root/train/<class>/<image>)")
        for split in (s for s in SPLIT_NAMES if s in subdirs):
            folder = os.path.join(root, split)
            found = _visible(folder, dirs=True)
            if split != "train" and found != classes:
                raise DataError(f"{root}: {split}/ has classes {found} but train/ has {classes}")
            splits[split] = _class_files(folder, classes, ignored)
            loose = _loose_images(folder, ignored)
            if split == "train":
                unlabeled += loose
            elif loose:
                ignored[f"image(s) directly in {split}/, outside a class folder (no label to test on)"] = len(loose)
    else:
        classes = subdirs
        if classes:
            splits["train"] = _class_files(root, classes, ignored)
    if os.path.isdir(os.path.join(root, UNLABELED)):
        unlabeled += _images_under(os.path.join(root, UNLABELED), ignored)
    if unlabeled_path:
        if not os.path.isdir(unlabeled_path):
            raise DataError(f"--unlabeled-path {unlabeled_path}: " + (
                "a file, not a folder; give the folder that holds the unlabeled images" if os.path.exists(unlabeled_path)
                else "no such folder"))
        more = _images_under(unlabeled_path, ignored)
        if not more:
            raise DataError(f"{unlabeled_path} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
        unlabeled += more
    return FolderLayout(root, classes, splits, unlabeled, ignored)


def _decode(path: str):
    from PIL import Image, UnidentifiedImageError

    if os.path.getsize(path) == 0:
        raise DataError(f"image file {path} is empty (0 bytes): remove it or put back the image")
    try:
        with Image.open(path) as image:
            image.load()
            return image.mode, image.copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image file {path}: {exc}") from None


def _decode_in_threads(paths: Sequence[str], progress: bool) -> list:
    """(mode, PIL image) of each file, decoded in threads (PIL releases the GIL while decoding)."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        return list(tqdm(pool.map(_decode, paths, chunksize=64), total=len(paths), desc="decoding images",
                         disable=None if progress else True, leave=False))


def _decode_all(files: List[Tuple[str, int]], size: Optional[Tuple[int, int]], progress: bool):
    """uint8 (n, C, H, W) of the files, all in one colour mode; mixed modes are converted to RGB
    (or L when every image is grayscale) with a warning that says how many were converted."""
    decoded = _decode_in_threads([f for f, _ in files], progress)
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


def image_files(paths: Sequence[str]) -> List[str]:
    """The image files of ``paths`` (image files, or folders searched at any depth), in order, each
    as the user would write it (a folder's path joined with the file's place under it)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            ignored: Dict[str, int] = {}
            found += _images_under(path, ignored)
        elif os.path.isfile(path):
            if not _is_image(path):
                raise DataError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
            found.append(path)
        else:
            raise DataError(f"input file not found: {path}")
    return found


def decode_images(files: Sequence[str], channels: int, size: Tuple[int, int], progress: bool = True) -> np.ndarray:
    """uint8 (n, channels, H, W) of image files for a model that takes that shape: each converted to
    L or RGB and resized (PIL's default filter, as --data-hp size=H,W resizes for training) when it
    differs; how many were resized is said."""
    decoded = _decode_in_threads(files, progress)
    out = np.empty((len(files), channels, *size), dtype=np.uint8)
    resized = 0
    for i, (_, image) in enumerate(decoded):
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (size[1], size[0]):
            image, resized = image.resize((size[1], size[0])), resized + 1
        array = np.asarray(image, dtype=np.uint8)
        out[i] = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if resized:
        warnings.warn(f"resized {resized} of {len(files)} image(s) to {size[0]}x{size[1]}, the size the model takes",
                      stacklevel=2)
    return out


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
    lone = os.path.join(path, entries[0]) if len(entries) == 1 else None
    # A lone top folder that holds folders is a wrapper (an archive's): descend. One that holds
    # only images is a class folder, and stays one.
    if lone and os.path.isdir(lone) and entries[0] != UNLABELED and _visible(lone, dirs=True):
        path = lone
    return path


def load_image_folder(path: str, train_split: str = "train", test_split: str = "test",
                      size: Optional[Sequence[int]] = None, expect_classes: Optional[int] = None,
                      hflip: bool = True, augment_set: str = "cifar", progress: bool = True,
                      unlabeled_path: Optional[str] = None, test_fraction: float = TEST_FRACTION,
                      seed: int = 0) -> ArrayDataset:
    """The labeled images of root/<split>/<class>/* (or root/<class>/*, with a seeded stratified
    ``test_fraction`` of them held out as the test split) and the class-less ones as x_unlabeled
    (see scan_folder); which files went where is kept in ``source_rows`` (split.json)."""
    root = _resolve_root(path)
    size = image_size(size)
    layout = scan_folder(root, unlabeled_path)
    classes = layout.classes
    if not classes:
        raise DataError(f"{root} has no class folders, so no image has a label (layouts: root/<class>/<image>, or "
                        f"root/train/<class>/<image> and root/test/<class>/<image>; class-less images go in "
                        f"root/{UNLABELED}/)")
    if len(classes) < 2:
        raise DataError(f"{root} has one class folder ({classes[0]}); a classifier needs two")
    if expect_classes is not None and len(classes) != expect_classes:
        raise DataError(f"{root} has {len(classes)} class folders, expected {expect_classes}")
    if train_split not in layout.splits:
        raise DataError(f"image folder {root} has no {train_split}/ folder (layout: root/<split>/<class>/<image>)")
    train_files = layout.splits[train_split]
    given_test = layout.splits.get(test_split) if test_split in layout.splits else None
    if given_test is None and test_split != "test":
        raise DataError(f"image folder {root} has no {test_split}/ folder (layout: root/<split>/<class>/<image>)")
    said = layout.ignored_line()
    if said:
        warnings.warn(said, stacklevel=2)
    files = train_files + (given_test or []) + [(p, -1) for p in layout.unlabeled]
    options = {"size": size, "train": train_split, "test": test_split}
    cache = os.path.join(cache_dir(), f"image_folder-{_cache_key(root, files, options)}.npz")
    if os.path.isfile(cache):
        with np.load(cache) as saved:
            x_all = saved["x"]
    else:
        x_all = _decode_all(files, size, progress)
        write_atomically(cache, lambda f: np.savez(f, x=x_all))
    labels = np.array([label for _, label in files], dtype=np.int64)
    n_train, n_test = len(train_files), len(given_test or [])
    train_rows = np.arange(n_train)
    if given_test is not None:
        test_rows = np.arange(n_train, n_train + n_test)
    else:
        train_rows, test_rows = stratified_hold_out(labels[:n_train], test_fraction, seed, f"{root}: labeled images",
                                                    "give a test/ folder beside train/, or more labeled images",
                                                    class_names=[f"{c}/" for c in classes])
    unlabeled_rows = np.arange(n_train + n_test, len(files))

    def names(rows):
        return [os.path.relpath(files[i][0], root) for i in rows]

    # Files are listed class by class, so the order carries no meaning: the mpl protocol refuses it.
    return ArrayDataset("image_folder", x_all[train_rows], labels[train_rows], x_all[test_rows], labels[test_rows],
                        len(classes), x_unlabeled=x_all[unlabeled_rows] if len(unlabeled_rows) else None,
                        hflip=hflip, augment_set=augment_set, ordered=False, class_names=list(classes),
                        source_rows={"folder": os.path.abspath(root), "train": names(train_rows),
                                     "test": names(test_rows), "unlabeled": names(unlabeled_rows),
                                     "test_fraction": None if given_test is not None else test_fraction})


@DATASETS.register("image_folder")
def load_image_folder_dataset(path: Optional[str], seed: int = 0, train_split: str = "train",
                              test_split: str = "test", size: Optional[Sequence[int]] = None,
                              hflip: bool = True, augment_set: str = "cifar", unlabeled_path: Optional[str] = None,
                              test_fraction: float = TEST_FRACTION) -> ArrayDataset:
    """root/<class>/* or root/<split>/<class>/* of PIL-readable images (class-less images in
    root/unlabeled/, loose at root, or under ``unlabeled_path``: the unlabeled pool), or a
    .tar/.tar.gz of such a folder."""
    if not path:
        raise DataError("dataset 'image_folder' needs --data-path: a folder root/<class>/* (or root/<split>/<class>/*) "
                        "or its .tar.gz")
    return load_image_folder(path, train_split, test_split, size, hflip=hflip, augment_set=augment_set,
                             unlabeled_path=unlabeled_path, test_fraction=test_fraction, seed=seed)
