"""Image datasets in their official file formats, read into uint8 (n, channels, height, width) arrays.

- cifar10 / cifar100: the official python archives (read straight from the .tar.gz, or from
  the extracted folder), downloaded with checksum verification when ``download=true``. A
  folder in ImageFolder layout (``train/<class>/*``, ``test/<class>/*``) is read too.
- svhn: ``train_32x32.mat``, ``test_32x32.mat`` and optionally ``extra_32x32.mat``.
- mnist / fashion_mnist: the IDX files, gzipped or not.
- image_folder: ``root/<split>/<class>/*`` of any PIL-readable images (see folders.py).
"""
from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from typing import Optional

import numpy as np

from ...errors import DataError
from ...registry import DATASETS
from ..arrays import ArrayDataset
from ...files import check_tar_member, verify_checksum
from ...files import download as fetch
from .folders import has_image_folder_layout, load_image_folder

# --- CIFAR ------------------------------------------------------------------------------
CIFAR = {
    "cifar10": dict(archive="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
                    folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"], label_key=b"labels", num_classes=10),
    "cifar100": dict(archive="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
                     folder="cifar-100-python", train=["train"], test=["test"], label_key=b"fine_labels",
                     num_classes=100),
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


class _ArrayUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles; this unpickler builds dicts, lists and NumPy arrays and
    refuses any other global, so a crafted file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to load {module}.{name} from a CIFAR batch (not a plain array file)")
        return super().find_class(module, name)


def _read_cifar_batch(f, source: str, label_key: bytes):
    try:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except DataError:
        raise
    except Exception as exc:  # pickle raises many kinds; all mean "not a CIFAR batch"
        raise DataError(f"{source} is not a CIFAR python batch: {exc!r}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{source}: expected data of shape (n, 3072) and n labels, "
                        f"got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_from_archive(archive: str, spec: dict):
    out = {}
    try:
        with tarfile.open(archive) as tar:
            members = {}
            for member in tar.getmembers():
                check_tar_member(member, archive)
                members[member.name] = member
            for name in spec["train"] + spec["test"]:
                key = f"{spec['folder']}/{name}"
                if key not in members:
                    raise DataError(f"{archive} lacks {key}; is it the official python archive?")
                out[name] = _read_cifar_batch(tar.extractfile(members[key]), f"{archive}:{key}", spec["label_key"])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read {archive} as a tar archive: {exc}") from None
    return out


def _cifar_from_folder(folder: str, spec: dict):
    out = {}
    for name in spec["train"] + spec["test"]:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise DataError(f"missing CIFAR batch file {path}")
        with open(path, "rb") as f:
            out[name] = _read_cifar_batch(f, path, spec["label_key"])
    return out


def _cifar_image_folder(name: str, path: str) -> ArrayDataset:
    ds = load_image_folder(path, expect_classes=CIFAR[name]["num_classes"])
    ds.name = name
    return ds


def load_cifar(name: str, path: Optional[str], download_missing: bool) -> ArrayDataset:
    spec = CIFAR[name]
    if not path:
        raise DataError(f"dataset {name!r} needs --data-path: a folder holding {spec['archive']}, "
                        f"its extracted {spec['folder']}/, or train/ and test/ image folders")
    folder = os.path.join(path, spec["folder"])
    archive = os.path.join(path, spec["archive"])
    if os.path.isfile(path):
        if os.path.basename(path) != spec["archive"]:  # an archive of an image folder
            return _cifar_image_folder(name, path)
        archive, folder = path, ""
    if folder and os.path.isdir(folder):
        batches = _cifar_from_folder(folder, spec)
    elif os.path.isfile(archive):
        verify_checksum(archive, spec["md5"], "md5")
        batches = _cifar_from_archive(archive, spec)
    elif os.path.isdir(path) and has_image_folder_layout(path):
        return _cifar_image_folder(name, path)
    elif download_missing:
        fetch(CIFAR_URL + spec["archive"], archive, spec["md5"], "md5")
        batches = _cifar_from_archive(archive, spec)
    else:
        raise DataError(f"no {name} data in {path}: looked for {spec['folder']}/, {spec['archive']} and "
                        "train/ + test/ image folders; pass --data-hp download=true to fetch the archive")
    x_train, y_train = (np.concatenate(parts) for parts in zip(*(batches[n] for n in spec["train"])))
    x_test, y_test = (np.concatenate(parts) for parts in zip(*(batches[n] for n in spec["test"])))
    return ArrayDataset(name, x_train, y_train, x_test, y_test, spec["num_classes"])


@DATASETS.register("cifar10")
def load_cifar10(path: Optional[str], seed: int = 0, download: bool = False) -> ArrayDataset:
    return load_cifar("cifar10", path, download)


@DATASETS.register("cifar100")
def load_cifar100(path: Optional[str], seed: int = 0, download: bool = False) -> ArrayDataset:
    return load_cifar("cifar100", path, download)


# --- SVHN -------------------------------------------------------------------------------
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_MD5 = {"train": "e26dedcc434d2e4c54c9b2d4a06d8373", "test": "eb5a983be6a315427106f1b164d9cef3",
            "extra": "a93ce644f1a588dc4d68dda5feec44a7"}


def _read_svhn_mat(path: str):
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    except Exception as exc:  # scipy raises ValueError, KeyError, OSError, ... for bad files
        raise DataError(f"cannot read {path} as an SVHN .mat file: {exc!r}") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"{path}: expected X of shape (32, 32, 3, n) and n labels, got {x.shape} and {len(y)}")
    y[y == 10] = 0  # the official files label the digit 0 as 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8), y


@DATASETS.register("svhn")
def load_svhn(path: Optional[str], seed: int = 0, extra: str = "none", download: bool = False) -> ArrayDataset:
    """extra: 'none', or 'unlabeled' to add extra_32x32.mat (labels dropped) to the unlabeled pool."""
    if extra not in ("none", "unlabeled"):
        raise DataError(f"svhn extra must be 'none' or 'unlabeled', got {extra!r}")
    if not path:
        raise DataError("dataset 'svhn' needs --data-path: the folder of train_32x32.mat and test_32x32.mat")
    parts = ["train", "test"] + (["extra"] if extra == "unlabeled" else [])
    arrays = {}
    for part in parts:
        file = os.path.join(path, f"{part}_32x32.mat")
        if not os.path.isfile(file):
            if not download:
                raise DataError(f"missing SVHN file {file}; pass --data-hp download=true to fetch it")
            fetch(SVHN_URL + f"{part}_32x32.mat", file, SVHN_MD5[part], "md5")
        arrays[part] = _read_svhn_mat(file)
    return ArrayDataset("svhn", *arrays["train"], *arrays["test"], num_classes=10,
                        x_unlabeled=arrays["extra"][0] if "extra" in arrays else None,
                        hflip=False, augment_set="svhn")


# --- MNIST and Fashion-MNIST (IDX) ------------------------------------------------------
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
IDX_SOURCES = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "x_train": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "y_train": "d53e105ee54ea40749a09fcbcd1e9432",
        "x_test": "9fb629c4189551a2d022fa330f9573f3", "y_test": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "x_train": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "y_train": "25c81989df183df01b3e8a0aad5dffbe",
        "x_test": "bef4ecab320f06d8554ea6380940ec79", "y_test": "bb300cfdad3c16e7a12a480ee83cd310"}),
}
# Where the Debian package dataset-fashion-mnist puts the official files.
DEFAULT_PATHS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzipped when the name ends in .gz) as a uint8 array of its stated shape."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: the header promises shape {shape} ({expected} bytes) but the file "
                        f"has {len(data)} bytes (truncated or corrupt)")
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header).reshape(shape)  # writable


def _find_idx(path: str, stem: str) -> Optional[str]:
    for candidate in (stem, stem + ".gz"):
        if os.path.isfile(os.path.join(path, candidate)):
            return os.path.join(path, candidate)
    return None


def load_idx_dataset(name: str, path: Optional[str], download_missing: bool) -> ArrayDataset:
    path = path or DEFAULT_PATHS.get(name)
    if not path:
        raise DataError(f"dataset {name!r} needs --data-path: the folder of its IDX files")
    base_url, md5 = IDX_SOURCES[name]
    arrays = {}
    for key, stem in IDX_FILES.items():
        file = _find_idx(path, stem)
        if file is None:
            if not download_missing:
                raise DataError(f"missing {stem}[.gz] in {path}; pass --data-hp download=true to fetch it")
            file = fetch(base_url + stem + ".gz", os.path.join(path, stem + ".gz"), md5[key], "md5")
        arrays[key] = read_idx(file)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{name} {split}: images of shape {x.shape} do not match labels of shape {y.shape}")
    digits = name == "mnist"
    return ArrayDataset(name, arrays["x_train"][:, None], arrays["y_train"].astype(np.int64),
                        arrays["x_test"][:, None], arrays["y_test"].astype(np.int64), num_classes=10,
                        hflip=not digits, augment_set="svhn" if digits else "cifar")


@DATASETS.register("mnist")
def load_mnist(path: Optional[str], seed: int = 0, download: bool = False) -> ArrayDataset:
    return load_idx_dataset("mnist", path, download)


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(path: Optional[str], seed: int = 0, download: bool = False) -> ArrayDataset:
    """Default path: /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)."""
    return load_idx_dataset("fashion_mnist", path, download)
