"""Bad input is refused before training starts, with a message that names the problem."""
import numpy as np
import pytest
import torch

from mentor.data import ArrayDataset, load_dataset
from mentor.errors import CheckpointError, ConfigError, DataError
from mentor.train import Trainer, load_run
from mentor.train.checkpoint import load_checkpoint, save_checkpoint

from conftest import blobs, tiny_config


def start(dataset, **overrides):
    return Trainer(tiny_config("meta_pseudo_labels", **overrides), dataset=dataset)


def test_mismatched_lengths():
    ds = blobs()
    ds.y_train = ds.y_train[:-1]
    with pytest.raises(DataError, match="y_train has 59 labels but the features have 60 rows"):
        start(ds)


def test_label_outside_range():
    ds = blobs()
    ds.y_train = ds.y_train.copy()
    ds.y_train[4] = 7
    with pytest.raises(DataError, match=r"labels in \[0, 7\] but classes must be 0..2"):
        start(ds)


def test_negative_label():
    ds = blobs()
    ds.y_test = ds.y_test.copy()
    ds.y_test[0] = -1
    with pytest.raises(DataError, match="y_test has labels in"):
        start(ds)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(bad):
    ds = blobs()
    ds.x_train = ds.x_train.copy()
    ds.x_train[11, 2] = bad
    with pytest.raises(DataError, match="x_train has NaN or infinite values in 1 row.*index 11"):
        start(ds)


def test_non_finite_unlabeled_features():
    ds = blobs()
    ds.x_unlabeled = ds.x_unlabeled.copy()
    ds.x_unlabeled[3, 0] = np.nan
    with pytest.raises(DataError, match="x_unlabeled has NaN"):
        start(ds)


def test_class_with_no_training_example():
    ds = blobs()
    keep = ds.y_train != 1
    ds.x_train, ds.y_train = ds.x_train[keep], ds.y_train[keep]
    with pytest.raises(DataError, match="class 1 has no training example"):
        start(ds)


def test_fewer_labels_than_classes():
    with pytest.raises(DataError, match="--num-labeled 2 leaves some of the 3 classes with no example"):
        start(blobs(), num_labeled=2)


def test_more_labels_than_examples():
    with pytest.raises(DataError, match="--num-labeled 61 exceeds the 60 available training examples"):
        start(blobs(), num_labeled=61)


def test_empty_unlabeled_set():
    ds = blobs()
    ds.x_unlabeled = None
    with pytest.raises(DataError, match="the unlabeled set is empty"):
        start(ds, num_labeled=60, unlabeled_pool="rest")


def test_wrong_feature_shape_between_splits():
    ds = blobs()
    ds.x_test = ds.x_test[:, :3]
    with pytest.raises(DataError, match="x_test rows have shape"):
        start(ds)


def test_npz_missing_file_and_arrays(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_dataset("npz", str(tmp_path / "nope.npz"))
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(3))
    with pytest.raises(DataError, match="lacks the array.*x_test, y_test"):
        load_dataset("npz", str(path))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="is not a .npz archive"):
        load_dataset("npz", str(garbage))


def test_npz_round_trip(tmp_path):
    ds = blobs()
    path = tmp_path / "d.npz"
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
             x_unlabeled=ds.x_unlabeled)
    loaded = load_dataset("npz", str(path))
    assert loaded.num_classes == 3 and loaded.x_unlabeled.shape == (40, 4)
    assert np.array_equal(loaded.y_train, ds.y_train)


def test_unknown_names_list_choices():
    with pytest.raises(ConfigError, match="unknown method 'nope'; choose one of: .*meta_pseudo_labels"):
        Trainer(tiny_config("nope"), dataset=blobs())
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; choose one of: .*digits.*two_moons"):
        load_dataset("nope")
    with pytest.raises(ConfigError, match="no hyper-parameter 'feedbak'; valid: .*feedback"):
        Trainer(tiny_config("meta_pseudo_labels", method_options={"feedbak": "dot"}), dataset=blobs())
    with pytest.raises(ConfigError, match="feedback='dott': takes one of expected, dot, cosine"):
        Trainer(tiny_config("meta_pseudo_labels", method_options={"feedback": "dott"}), dataset=blobs())
    with pytest.raises(ConfigError, match="needs hard labels"):
        Trainer(tiny_config("meta_pseudo_labels", method_options={"labels": "soft", "feedback": "loss_diff"}),
                dataset=blobs())


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not a mentor checkpoint"):
        load_checkpoint(str(path))


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1, "weights": torch.zeros(1000)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(str(path))


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a mentor checkpoint"):
        load_checkpoint(str(path))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    out = str(tmp_path / "run")
    Trainer(tiny_config("supervised", out=out), dataset=blobs()).fit()
    with pytest.raises(CheckpointError, match="different run.*lr: 0.05 in checkpoint vs 0.1 now"):
        Trainer(tiny_config("supervised", out=out, lr=0.1), dataset=blobs()).fit(resume=True)


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    Trainer(tiny_config("supervised", out=out), dataset=blobs()).fit()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        Trainer(tiny_config("supervised", out=out), dataset=blobs()).fit()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(tiny_config("supervised", out=str(tmp_path / "empty")), dataset=blobs()).fit(resume=True)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_run(str(tmp_path / "empty"))


def test_arrays_built_in_python_are_told_about_the_benchmark_defaults():
    """Trainer(config, dataset=ArrayDataset(...)) with num_labeled left at 10 labels 10 of the
    user's examples, and raw features train badly: both are said, with the way out."""
    import warnings

    ds = blobs(n_train=40)
    raw = ArrayDataset("mine", ds.x_train * np.array([1, 100, 0.01, 1], np.float32) + 50, ds.y_train,
                       ds.x_test, ds.y_test, 3)
    with pytest.warns(UserWarning) as said:
        Trainer(tiny_config(method="supervised", num_labeled=12), dataset=raw)
    text = " ".join(str(w.message) for w in said)
    assert "num_labeled=12 labels 12 of the 40 training examples of 'mine'" in text and "num_labeled=0" in text
    assert "features of 'mine' are not standardised" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every label, unit scale: nothing to say; nor for a built-in dataset
        Trainer(tiny_config(method="supervised", num_labeled=0), dataset=ds)
        Trainer(tiny_config(method="supervised", dataset="digits", num_labeled=50))
