"""Frozen-embedding SSL for images: an image folder embedded once (clean + K weak + K strong
views) by the packaged EfficientNet-Lite0, cached atomically and resumably, trained on by any
method with the cached views, and `mentor predict` embedding new images the same way."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mentor import embedding
from mentor.data import load_dataset
from mentor.errors import ConfigError, DataError
from mentor.train import TrainConfig, Trainer

from conftest import patch_images

EMBED = {"embed": "efficientnet_lite0", "embed_resolution": 32, "embed_views": 2}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def folder(tmp_path):
    """root/{train,test}/<class>/*.png: 3 classes of 16x16 patch images."""
    x, y = patch_images(48, np.random.default_rng(0), size=16)
    root = tmp_path / "photos"
    for i, (image, label) in enumerate(zip(x, y)):
        split = "test" if i % 4 == 0 else "train"
        os.makedirs(root / split / f"c{label}", exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(root / split / f"c{label}" / f"{i}.png")
    return str(root)


def config(folder, method="fixmatch", **overrides):
    base = dict(method=method, dataset="image_folder", data_path=folder, dataset_options=dict(EMBED), model="mlp",
                model_options={"hidden": [16]}, num_labeled=6, steps=4, batch_size=6, unlabeled_batch_size=12,
                eval_every=0, progress=False, seed=0)
    base.update(overrides)
    return TrainConfig(**base)


def cache_files(tmp_path):
    return sorted(os.listdir(tmp_path / "cache" / "embeddings"))


def test_image_folder_is_embedded_once_with_augmented_views_and_cached(folder, tmp_path, capsys):
    trainer = Trainer(config(folder, progress=True))
    ds = trainer.dataset
    assert ds.x_train.shape == (36, 5, 1280) and ds.x_test.shape == (12, 1, 1280)
    assert trainer.method.models["model"].net[1].in_features == 1280  # the mlp reads embeddings
    err = capsys.readouterr().err
    assert "embedding train" in err and "img/s" in err or "img_per_s" in err  # the progress bar
    # the clean view is the backbone's features of the clean image; augmented views differ from it
    images = load_dataset("image_folder", folder).x_train
    embedder = embedding.Embedder("efficientnet_lite0", (3, 16, 16), "packaged", 32)
    mean = torch.full((1, 3, 1, 1), 127 / 255)
    with torch.no_grad():
        clean = embedder((torch.as_tensor(images[:4]).float() / 255 - mean) / (128 / 255))
    assert np.allclose(ds.x_train[:4, 0], clean.numpy(), atol=1e-4)
    assert not np.allclose(ds.x_train[:, 1], ds.x_train[:, 0]) and not np.allclose(ds.x_train[:, 3], ds.x_train[:, 0])
    files = cache_files(tmp_path)
    assert len([f for f in files if f.endswith(".npy")]) == 2 and not any("partial" in f for f in files)
    record = json.loads(open(tmp_path / "cache" / "embeddings" / [f for f in files if f.endswith(".json")][0]).read())
    assert record["images_per_s"] > 0 and record["views"] in (5, 1)
    summary = trainer.fit()
    assert np.isfinite(summary["final_test_loss"])
    # a second run reads the cache: the backbone never runs
    original = embedding.Embedder.forward
    embedding.Embedder.forward = lambda self, x: (_ for _ in ()).throw(AssertionError("embedded again"))
    try:
        again = Trainer(config(folder, seed=1))
    finally:
        embedding.Embedder.forward = original
    assert np.array_equal(again.dataset.x_train, ds.x_train)


def test_views_pick_cached_embeddings(folder):
    trainer = Trainer(config(folder))
    views, stored = trainer.views, torch.as_tensor(np.asarray(trainer.dataset.x_train[:8]))
    g = torch.Generator().manual_seed(0)
    weak, strong = views.weak(stored, g), views.strong(stored, g)
    for i in range(8):
        assert any(torch.equal(weak[i], stored[i, k]) for k in (1, 2))
        assert any(torch.equal(strong[i], stored[i, k]) for k in (3, 4))
    assert torch.equal(views.eval(stored), stored[:, 0])


def test_killed_embedding_resumes_to_the_same_numbers(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(embedding, "CHUNK", 8)
    reference = Trainer(config(folder)).dataset.x_train.copy()
    for name in cache_files(tmp_path):
        os.remove(tmp_path / "cache" / "embeddings" / name)
    calls = {"n": 0}
    original = embedding.Embedder.forward

    def dying(self, x):
        calls["n"] += 1
        if calls["n"] > 1 + 5 * 2:  # the probe, then two chunks of five views
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(embedding.Embedder, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(folder))
    partial = [f for f in cache_files(tmp_path) if f.endswith(".partial.npy.done")]
    assert partial and open(tmp_path / "cache" / "embeddings" / partial[0]).read() == "16"
    monkeypatch.setattr(embedding.Embedder, "forward", original)
    resumed = Trainer(config(folder)).dataset.x_train
    assert np.array_equal(resumed, reference)


@pytest.mark.parametrize("method", ["meta_pseudo_labels", "mixmatch", "label_propagation", "mean_teacher"])
def test_methods_train_on_cached_views(folder, method):
    summary = Trainer(config(folder, method=method, steps=5)).fit()
    assert np.isfinite(summary["final_test_loss"])


def test_predict_embeds_new_images_the_same_way(folder, tmp_path):
    import mentor

    out = tmp_path / "run"
    os.makedirs(os.path.join(folder, "unlabeled"))
    for i, image in enumerate(patch_images(5, np.random.default_rng(1), size=16)[0]):
        Image.fromarray(image.transpose(1, 2, 0)).save(os.path.join(folder, "unlabeled", f"u{i}.png"))
    trainer = Trainer(config(folder, out=str(out), method="supervised"))
    assert trainer.dataset.x_unlabeled.shape == (5, 5, 1280)  # class-less images are embedded into the pool
    trainer.fit()
    assert len(json.loads(open(out / "split.json").read())["unlabeled"]) == 36 + 5
    spec = json.loads(open(out / "inference.json").read())
    assert spec["kind"] == "image" and spec["input_shape"] == [3, 16, 16] and spec["embedding"]["dim"] == 1280
    model = mentor.load_model(str(out))
    images = load_dataset("image_folder", folder).x_test
    expected = trainer.predict_classes(torch.as_tensor(np.asarray(trainer.dataset.x_test)))
    got = model.predict_proba(images).argmax(axis=1)
    assert np.array_equal(got, expected)
    from mentor.cli import main

    assert main(["predict", str(out), "--data", os.path.join(folder, "test"), "--out", str(tmp_path / "p.csv")]) == 0
    lines = open(tmp_path / "p.csv").read().splitlines()
    assert len(lines) == 1 + len(images) and lines[0] == "row,prediction,p_c0,p_c1,p_c2"
    assert lines[1].startswith(os.path.join(folder, "test", "c0", "0.png") + ",c")


def test_embedding_errors_name_the_problem(folder):
    with pytest.raises(DataError, match="embeds images"):
        Trainer(config(folder, dataset="two_moons", data_path=None))
    with pytest.raises(ConfigError, match="needs pretrained weights"):
        Trainer(config(folder, dataset_options={"embed": "small_cnn"}))
    with pytest.raises(ConfigError, match="embed_views must be >= 1"):
        Trainer(config(folder, dataset_options={**EMBED, "embed_views": 0}))


def test_classical_baselines_read_the_clean_embedding():
    from mentor.compare.baselines import as_features

    stacks = np.random.default_rng(0).normal(size=(5, 5, 8)).astype(np.float32)
    assert np.array_equal(as_features(stacks), stacks[:, 0])
    images = np.zeros((2, 3, 4, 4), np.uint8)
    assert as_features(images).shape == (2, 48)


@pytest.mark.parametrize("method", ["sequencematch", "defixmatch", "comatch"])
def test_the_family_trains_on_cached_views(folder, method):
    """A medium view, a labeled strong view and a second strong view come from the cached views."""
    summary = Trainer(config(folder, method=method, steps=4)).fit()
    assert np.isfinite(summary["final_test_loss"])


def test_compare_embeds_once_and_scores_methods_and_baselines_on_the_embeddings(folder, tmp_path):
    from mentor.compare import compare

    result = compare(config(folder, method="supervised", steps=3, out=None), methods=["supervised", "fixmatch"],
                     baselines=["logistic_regression"], folds=2, out=str(tmp_path / "cmp"), progress=False)
    rows = {r["label"]: r for r in result["tables"]["all"]["rows"]}
    assert {"supervised", "fixmatch"} <= set(rows) and any(r["baseline"] for r in rows.values())
    assert len([f for f in cache_files(tmp_path) if f.endswith(".npy")]) == 2  # training and test, made once
