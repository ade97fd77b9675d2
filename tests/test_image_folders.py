"""The image-folder journey: class folders with class-less images beside them train with those
images in the unlabeled pool, a folder without train/test gets a saved seeded test split, what
is left out is said, and `mentor predict` takes a loose folder and answers in class names."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from mentor.cli import _warning_line, main
from mentor.data import load_dataset
from mentor.errors import DataError
from tests.conftest import patch_images


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path / "cache"))


CLASSES = ["bird", "cat", "dog"]


def save(folder, images, names=None):
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(os.path.join(folder, (names or {}).get(i, f"{i:03d}.png")))


def photos(root, labeled=12, unlabeled=20, split=False, seed=0):
    """root/<class>/ (or root/train/<class>/ + root/test/<class>/) of patch images, class-less
    ones in root/unlabeled/ (nested) and loose at root, and a README that is no image."""
    rng = np.random.default_rng(seed)
    x, y = patch_images(labeled * len(CLASSES), rng)
    for k, name in enumerate(CLASSES):
        save(root / ("train" if split else "") / name, x[y == k])
        if split:
            save(root / "test" / name, patch_images(6, rng)[0][patch_images(6, rng)[1] == k])
    xu, _ = patch_images(unlabeled, rng)
    save(root / "unlabeled" / "batch1", xu[:unlabeled // 2])
    save(root, xu[unlabeled // 2:], {i: f"loose{i}.png" for i in range(unlabeled)})
    (root / "README.txt").write_text("photos from the garden\n")


def test_class_less_images_join_the_unlabeled_pool_and_what_is_left_out_is_said(tmp_path):
    photos(tmp_path / "photos", split=True)
    with pytest.warns(UserWarning, match=r"left out 1 file\(s\) that are not images"):
        ds = load_dataset("image_folder", str(tmp_path / "photos"))
    assert ds.class_names == CLASSES and len(ds.x_train) == 36 and len(ds.x_unlabeled) == 20
    assert ds.source_rows["unlabeled"][0] == "loose0.png" and "unlabeled/batch1/000.png" in ds.source_rows["unlabeled"]
    assert ds.source_rows["test_fraction"] is None and ds.source_rows["test"][0] == "test/bird/000.png"
    extra = tmp_path / "more"
    save(extra / "deep" / "er", patch_images(5, np.random.default_rng(3))[0])
    with pytest.warns(UserWarning):
        more = load_dataset("image_folder", str(tmp_path / "photos"), unlabeled_path=str(extra))
    assert len(more.x_unlabeled) == 25
    with pytest.raises(DataError, match="--unlabeled-path .*nowhere: no such folder"):
        load_dataset("image_folder", str(tmp_path / "photos"), unlabeled_path=str(tmp_path / "nowhere"))


def test_a_folder_of_class_folders_gets_a_seeded_stratified_test_split(tmp_path):
    photos(tmp_path / "photos")
    with pytest.warns(UserWarning):
        first = load_dataset("image_folder", str(tmp_path / "photos"), seed=1)
    with pytest.warns(UserWarning):
        again = load_dataset("image_folder", str(tmp_path / "photos"), seed=1)
    with pytest.warns(UserWarning):
        other = load_dataset("image_folder", str(tmp_path / "photos"), seed=2)
    assert len(first.y_test) == 8 and sorted(np.bincount(first.y_test)) == [2, 3, 3]  # 20% of 36, stratified
    assert first.source_rows["test"] == again.source_rows["test"] != other.source_rows["test"]
    assert first.source_rows["test_fraction"] == 0.2 and len(first.x_unlabeled) == 20
    assert not set(first.source_rows["test"]) & set(first.source_rows["train"])


def test_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "only" / "cat").mkdir(parents=True)
    save(tmp_path / "only" / "cat", patch_images(3, np.random.default_rng(0))[0])
    (tmp_path / "only" / "dog").mkdir()
    with pytest.raises(DataError, match=r"class folder .*dog holds no image file"):
        load_dataset("image_folder", str(tmp_path / "only"))
    save(tmp_path / "loose", patch_images(3, np.random.default_rng(0))[0])
    (tmp_path / "loose" / "unlabeled").mkdir()
    with pytest.raises(DataError, match=r"has no class folders, so no image has a label .*root/unlabeled/"):
        load_dataset("image_folder", str(tmp_path / "loose"))


def test_the_journey_trains_with_the_unlabeled_images_and_predicts_a_loose_folder_by_name(tmp_path, capsys):
    photos(tmp_path / "photos", split=True)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="left out 1 file") as said:
        assert main(["train", "--dataset", "image_folder", "--data-path", str(tmp_path / "photos"), "--method",
                     "fixmatch", "--model", "small_cnn", "--steps", "3", "--eval-every", "3", "--batch-size", "8",
                     "--unlabeled-batch-size", "8", "--out", str(out), "--no-progress"]) == 0
    note = said[0]
    assert _warning_line(note.message, note.category, note.filename, note.lineno).startswith("mentor: note: ")
    split = json.loads((out / "split.json").read_text())
    assert len(split["labeled"]) == 36  # every labeled image: a folder's labels are the user's own
    assert len(split["unlabeled"]) == 36 + 20  # the training images and the 20 class-less ones
    assert json.loads((out / "inference.json").read_text())["class_names"] == CLASSES
    new = tmp_path / "new_photos"
    rng = np.random.default_rng(9)
    save(new, patch_images(2, rng)[0])
    save(new / "sub", patch_images(2, rng)[0])
    big = Image.fromarray(patch_images(1, rng, size=16)[0][0].transpose(1, 2, 0))
    big.save(new / "sub" / "large.png")
    with pytest.warns(UserWarning, match=r"resized 1 of 6 image\(s\) to 8x8"):
        assert main(["predict", str(out), "--data", str(new), str(tmp_path / "photos" / "loose0.png"),
                     "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [str(new / "000.png"), str(new / "001.png"), str(new / "sub" / "000.png"),
                                       str(new / "sub" / "001.png"), str(new / "sub" / "large.png"),
                                       str(tmp_path / "photos" / "loose0.png")]
    assert {r["prediction"] for r in rows} <= set(CLASSES) and list(rows[0])[2:] == [f"p_{c}" for c in CLASSES]
    (new / "notes.txt").write_text("x")
    assert main(["predict", str(out), "--data", str(new / "notes.txt"), str(new), "--out", str(tmp_path / "q.csv")]) == 2
    assert "notes.txt is not an image file" in capsys.readouterr().err


def test_shards_read_a_folder_as_training_does(tmp_path, capsys):
    from mentor.data.shards import ShardSet

    photos(tmp_path / "photos")
    with pytest.warns(UserWarning, match=r"left out 1 file\(s\) that are not images"):
        assert main(["shards", "--from", str(tmp_path / "photos"), "--out", str(tmp_path / "shards"),
                     "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "photos-train: 36 images (36 labeled)" in captured.out and "photos-unlabeled: 20 images" in captured.out
    assert ShardSet(str(tmp_path / "shards" / "photos-train.json")).class_names == CLASSES
