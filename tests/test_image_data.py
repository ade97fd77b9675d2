"""Image dataset loaders on small files in the official formats, written here; bad files."""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from mentor import files
from mentor.data import load_dataset, make_split
from mentor.data.sources import images
from mentor.files import file_digest
from mentor.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path / "cache"))


def cifar_batch(n, seed, label_key=b"labels"):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, 10, n).tolist(), b"batch_label": b"test"}


def write_cifar_archive(folder, n=6):
    """cifar-10-python.tar.gz with the official member names and pickled dict layout."""
    archive = os.path.join(folder, "cifar-10-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            payload = pickle.dumps(cifar_batch(n, i), protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive


def test_cifar10_from_archive_and_folder(tmp_path, monkeypatch):
    archive = write_cifar_archive(str(tmp_path))
    monkeypatch.setitem(images.CIFAR["cifar10"], "md5", file_digest(archive, "md5"))
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (6, 3, 32, 32) and ds.ordered and ds.hflip
    first = cifar_batch(6, 0)
    # The official row layout is 1024 red, 1024 green, 1024 blue values, row-major.
    assert np.array_equal(ds.x_train[0, 1].ravel(), first[b"data"][0, 1024:2048])
    assert ds.y_train[:6].tolist() == first[b"labels"]
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    os.remove(archive)
    again = load_dataset("cifar10", str(tmp_path))
    assert np.array_equal(again.x_train, ds.x_train)


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    archive = os.path.join(tmp_path, "cifar-100-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for i, name in enumerate(["train", "test"]):
            batch = cifar_batch(4, i, label_key=b"fine_labels")
            batch[b"fine_labels"] = [99, 0, 50, 7]
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    monkeypatch.setitem(images.CIFAR["cifar100"], "md5", file_digest(archive, "md5"))
    ds = load_dataset("cifar100", str(tmp_path))
    assert ds.num_classes == 100 and ds.y_train.tolist() == [99, 0, 50, 7]


def test_cifar_checksum_mismatch_is_refused(tmp_path):
    write_cifar_archive(str(tmp_path))  # not the official file, so the official md5 fails
    with pytest.raises(DataError, match="checksum mismatch.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", str(tmp_path))


def test_missing_cifar_names_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match="no cifar10 data in .*cifar-10-batches-py.*download=true"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load .*system"):
        load_dataset("cifar10", str(tmp_path))


def test_download_verifies_and_leaves_nothing_on_mismatch(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "got" / "file.bin"
    good = file_digest(str(source), "md5")
    with pytest.raises(DataError, match="checksum mismatch"):
        files.download(source.as_uri(), str(dest), "0" * 32, "md5", progress=False)
    assert not dest.exists() and os.listdir(dest.parent) == []
    files.download(source.as_uri(), str(dest), good, "md5", progress=False)
    assert dest.read_bytes() == b"payload"


def tar_with(path, entries):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_path_traversal_and_links_in_archives_are_refused(tmp_path):
    for bad in ("../escape.txt", "/abs/escape.txt", "root/../../escape.txt"):
        archive = tmp_path / "bad.tar.gz"
        info = tarfile.TarInfo(bad)
        info.size = 1
        tar_with(archive, [(info, b"x")])
        dest = tmp_path / "out"
        with pytest.raises(DataError, match="refusing the entry"):
            files.safe_extract(str(archive), str(dest))
        assert not dest.exists() and not (tmp_path.parent / "escape.txt").exists()
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".extract")]
    link = tarfile.TarInfo("root/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar_with(tmp_path / "link.tar.gz", [(link, None)])
    with pytest.raises(DataError, match="link entry"):
        files.safe_extract(str(tmp_path / "link.tar.gz"), str(tmp_path / "out"))


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for part, n in (("train", 7), ("test", 3), ("extra", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([10, 1, 2, 3, 4, 5, 6][:n]).reshape(-1, 1)
        savemat(tmp_path / f"{part}_32x32.mat", {"X": x, "y": y})
    ds = load_dataset("svhn", str(tmp_path))
    assert ds.x_train.shape == (7, 3, 32, 32) and ds.y_train.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert not ds.hflip and ds.augment_set == "svhn" and ds.x_unlabeled is None
    from scipy.io import loadmat

    x = loadmat(tmp_path / "train_32x32.mat")["X"]
    assert ds.x_train[0, 2, 0, 1] == x[0, 1, 2, 0]
    extra = load_dataset("svhn", str(tmp_path), extra="unlabeled")
    assert extra.x_unlabeled.shape == (5, 3, 32, 32)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="cannot read .*test_32x32.mat"):
        load_dataset("svhn", str(tmp_path))


def write_idx(path, array, gz):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_gzipped_or_not(tmp_path, gz):
    rng = np.random.default_rng(1)
    suffix = ".gz" if gz else ""
    x, y = rng.integers(0, 256, (12, 28, 28)), np.arange(12) % 10
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y, gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", x[:4], gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", y[:4], gz)
    for name in ("mnist", "fashion_mnist"):
        ds = load_dataset(name, str(tmp_path))
        assert ds.x_train.shape == (12, 1, 28, 28) and np.array_equal(ds.x_train[:, 0], x)
        assert ds.y_train.tolist() == y.tolist()
    assert not load_dataset("mnist", str(tmp_path)).hflip  # digits are not mirrored
    assert load_dataset("fashion_mnist", str(tmp_path)).hflip


def test_corrupt_idx_files(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(DataError, match="truncated or corrupt"):
        images.read_idx(str(path))
    path.write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(DataError, match="bad magic"):
        images.read_idx(str(path))


def make_folder(root, specs):
    """specs: {(split, class): [(mode, size), ...]} -> PNG files."""
    for (split, cls), items in specs.items():
        os.makedirs(root / split / cls, exist_ok=True)
        for i, (mode, size) in enumerate(items):
            colour = {"L": 128, "RGB": (10, 200, 30), "RGBA": (10, 200, 30, 255)}[mode]
            Image.new(mode, size, colour).save(root / split / cls / f"{i}.png")


def test_image_folder_decodes_and_caches(tmp_path):
    make_folder(tmp_path / "data", {("train", "cat"): [("RGB", (8, 6))] * 3, ("train", "dog"): [("RGB", (8, 6))] * 2,
                                    ("test", "cat"): [("RGB", (8, 6))], ("test", "dog"): [("RGB", (8, 6))]})
    ds = load_dataset("image_folder", str(tmp_path / "data"))
    assert ds.x_train.shape == (5, 3, 6, 8) and ds.y_train.tolist() == [0, 0, 0, 1, 1]
    assert ds.x_train[0, :, 0, 0].tolist() == [10, 200, 30] and not ds.ordered
    assert len([f for f in os.listdir(tmp_path / "cache") if f.endswith(".npz")]) == 1
    again = load_dataset("image_folder", str(tmp_path / "data"))
    assert np.array_equal(again.x_train, ds.x_train)
    with tarfile.open(tmp_path / "data.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "data", arcname="data")
    packed = load_dataset("image_folder", str(tmp_path / "data.tar.gz"))
    assert np.array_equal(packed.x_train, ds.x_train)


def test_image_folder_mixed_modes_are_converted_and_said(tmp_path):
    make_folder(tmp_path, {("train", "a"): [("L", (4, 4)), ("RGBA", (4, 4))], ("train", "b"): [("RGB", (4, 4))],
                           ("test", "a"): [("RGB", (4, 4))], ("test", "b"): [("L", (4, 4))]})
    with pytest.warns(UserWarning, match=r"converted 3 image\(s\) to RGB.*'L': 2.*'RGBA': 1"):
        ds = load_dataset("image_folder", str(tmp_path))
    assert ds.x_train.shape == (3, 3, 4, 4) and ds.x_train[0, :, 0, 0].tolist() == [128, 128, 128]


def test_image_folder_sizes_and_unreadable_files(tmp_path):
    make_folder(tmp_path, {("train", "a"): [("RGB", (4, 4)), ("RGB", (5, 4))], ("train", "b"): [("RGB", (4, 4))],
                           ("test", "a"): [("RGB", (4, 4))], ("test", "b"): [("RGB", (4, 4))]})
    with pytest.raises(DataError, match=r"images differ in size: .*1.png is 5x4 .*size=H,W"):
        load_dataset("image_folder", str(tmp_path))
    ds = load_dataset("image_folder", str(tmp_path), size=[3, 3])
    assert ds.x_train.shape == (3, 3, 3, 3)
    (tmp_path / "train" / "b" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image file .*broken.png"):
        load_dataset("image_folder", str(tmp_path), size=[3, 3])


def test_mpl_split_protocol():
    y = np.arange(9000) % 10
    split = make_split(y, 400, 10, seed=0, protocol="mpl")
    assert split.labeled == list(range(5000, 5400)) and split.protocol == "mpl"
    with pytest.raises(DataError, match="order is not the official one"):
        make_split(y, 400, 10, seed=0, protocol="mpl", ordered=False)
    with pytest.raises(DataError, match="needs 5000 \\+ 4001"):
        make_split(y, 4001, 10, seed=0, protocol="mpl")
