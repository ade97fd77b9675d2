"""Noisy Student: filter and balance on hand-checkable values, pseudo-labels on disk (shards,
resume, bounded reads), the student's soft/hard-label loss, the rounds pipeline and its resume."""
import copy
import json
import os
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mentor.augment.images import RandAugment
from mentor.cli import main
from mentor.data import Batch
from mentor.errors import ConfigError, DataError
from mentor.methods import create_method
from mentor.methods.base import UnlabeledPool
from mentor.methods.noisy_student import pool_fingerprint
from mentor.models import MLP, WideResNet
from mentor.models.mlp import wider_options
from mentor.models.layers import DropPath, set_stochastic_depth
from mentor.pipelines.noisy_student import run_noisy_student
from mentor.pseudo_labels import ArrayPool, NpyPool, filter_and_balance, label_pool, read_labels
from mentor.train import TrainConfig


# --- filter and balance ---------------------------------------------------------------------
def test_without_balancing_every_example_at_or_above_the_threshold_is_kept_once():
    argmax = np.array([0, 0, 1, 1, 1, 2])
    confidence = np.array([0.9, 0.29, 0.3, 0.31, 0.2, 0.99])
    s = filter_and_balance(argmax, confidence, 3, threshold=0.3, balance=False)
    assert s.positions.tolist() == [0, 2, 3, 5]


def test_a_class_with_fewer_than_k_examples_is_duplicated_to_k():
    # K = 4; class 0 has 2 examples above 0.3 -> 2 copies each; the one at 0.1 is dropped.
    argmax = np.array([0, 0, 0, 1, 1, 1, 1])
    confidence = np.array([0.9, 0.5, 0.1, 0.9, 0.8, 0.7, 0.6])
    s = filter_and_balance(argmax, confidence, 2, threshold=0.3, per_class=4)
    assert s.positions.tolist() == [0, 0, 1, 1, 3, 4, 5, 6]
    assert s.per_class[0] == {"class": 0, "threshold": 0.3, "above": 2, "copies": 4}


def test_a_class_with_more_than_k_keeps_the_most_confident_on_the_official_grid():
    # K = 2: from 1.00 down the grid, 0.91 is the first value with 2 examples at or above it.
    argmax = np.zeros(4, dtype=int)
    confidence = np.array([0.5, 0.95, 0.87, 0.91])
    s = filter_and_balance(argmax, confidence, 1, threshold=0.3, per_class=2)
    assert s.per_class[0]["threshold"] == pytest.approx(0.91)
    assert s.positions.tolist() == [1, 3]


def test_fractional_copies_are_drawn_with_the_fractional_probability_and_seeded():
    # K = 3 over 2 examples: 1.5 copies each, so 1 or 2 copies, 3 on average.
    argmax, confidence = np.zeros(2, dtype=int), np.array([0.9, 0.8])
    sizes = [len(filter_and_balance(argmax, confidence, 1, per_class=3, seed=s).positions) for s in range(400)]
    assert set(sizes) <= {2, 3, 4} and abs(np.mean(sizes) - 3) < 0.15
    a = filter_and_balance(argmax, confidence, 1, per_class=3, seed=7).positions
    assert np.array_equal(a, filter_and_balance(argmax, confidence, 1, per_class=3, seed=7).positions)


def test_default_k_is_the_pool_over_the_classes_and_nothing_selected_is_an_error():
    argmax, confidence = np.array([0, 1, 1, 1]), np.array([0.9, 0.9, 0.8, 0.7])
    s = filter_and_balance(argmax, confidence, 2)  # K = 4 // 2 = 2
    assert [c["copies"] for c in s.per_class] == [2, 2] and s.positions.tolist() == [0, 0, 1, 2]
    with pytest.raises(DataError, match="lower the threshold"):
        filter_and_balance(argmax, np.full(4, 0.2), 2, threshold=0.3)


# --- pseudo-labels on disk ------------------------------------------------------------------
class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return self.linear(x)


def test_labels_are_sharded_resumed_and_read_back(tmp_path):
    torch.manual_seed(0)
    model, x = Counting(), np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    out = str(tmp_path / "labels")
    label = partial(label_pool, model, lambda t: t, ArrayPool(x), out, 3, torch.device("cpu"),
                    batch_size=3, shard_size=7, progress=False)
    assert label()["num_shards"] == 3 and model.seen == 20
    labels = read_labels(out)
    expected = F.softmax(model.linear(torch.from_numpy(x)), dim=1).detach().numpy()
    assert labels.probs.dtype == np.float16 and np.allclose(labels.probs, expected, atol=1e-3)
    assert np.array_equal(labels.argmax, expected.argmax(1)) and np.allclose(labels.confidence, expected.max(1))
    # A labelling killed after its first shard: only the missing shards are computed again.
    os.remove(os.path.join(out, "shard-00001.npz"))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    manifest["complete"] = False
    json.dump(manifest, open(os.path.join(out, "manifest.json"), "w"))
    with pytest.raises(DataError, match="incomplete"):
        read_labels(out)
    model.seen = 0
    label()
    assert model.seen == 7 and np.array_equal(read_labels(out).probs, labels.probs)
    with pytest.raises(ConfigError, match="another pool or teacher"):
        label_pool(model, lambda t: t, ArrayPool(x[:10]), out, 3, torch.device("cpu"), progress=False)


def test_npy_pool_reads_ranges_without_loading_the_file(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 1, 2, 3)
    np.save(tmp_path / "pool.npy", x)
    pool = NpyPool(str(tmp_path / "pool.npy"))
    assert len(pool) == 5 and np.array_equal(pool.read(1, 4), x[1:4]) and np.array_equal(pool.read(4, 9), x[4:])
    with open(tmp_path / "pool.npy", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "pool.npy") - 3)
    with pytest.raises(DataError, match="truncated"):
        NpyPool(str(tmp_path / "pool.npy"))


# --- the student ----------------------------------------------------------------------------
@pytest.mark.parametrize("labels", ["soft", "hard"])
def test_student_loss_is_cross_entropy_against_the_selected_teacher_labels(tmp_path, labels):
    torch.manual_seed(0)
    x = torch.randn(12, 4)
    indices = list(range(100, 112))
    teacher = nn.Linear(4, 3)
    folder = str(tmp_path / "labels")
    label_pool(teacher, lambda t: t, ArrayPool(x.numpy(), pool_fingerprint(indices)), folder, 3,
               torch.device("cpu"), progress=False)
    factory = partial(MLP, (4,), 3, hidden=[5])
    method = create_method("noisy_student", factory, 3, pseudo_labels=folder, labels=labels, threshold=0.0,
                           balance=False, student_dropout=0.0)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(10)
    method.unlabeled_pool = UnlabeledPool(x, lambda t: t, None, indices)
    student = method.models["student"]
    probs = torch.from_numpy(read_labels(folder).probs.astype(np.float32))
    target = probs if labels == "soft" else F.one_hot(probs.argmax(1), 3).float()
    with torch.no_grad():
        expected = -(target * F.log_softmax(student(x), dim=1)).sum(1).mean()
    student_before = copy.deepcopy(student)
    x_l, y_l = torch.randn(2, 4), torch.tensor([0, 1])
    logs = method.step(Batch(x_l, y_l, torch.randn(32, 4)))  # a batch larger than the pool: all 12
    assert float(logs["loss_u"]) == pytest.approx(float(expected), rel=1e-5)
    with torch.no_grad():
        expected_l = F.cross_entropy(student_before(x_l), y_l)
    assert float(logs["loss_l"]) == pytest.approx(float(expected_l), rel=1e-5)
    assert "teacher" not in method.models and method.teacher_steps == 0


def test_labels_made_for_another_pool_are_refused(tmp_path):
    folder = str(tmp_path / "labels")
    label_pool(nn.Linear(4, 3), lambda t: t, ArrayPool(np.zeros((6, 4), np.float32), pool_fingerprint(range(6))),
               folder, 3, torch.device("cpu"), progress=False)
    method = create_method("noisy_student", partial(MLP, (4,), 3, hidden=[5]), 3, pseudo_labels=folder)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(10)
    method.unlabeled_pool = UnlabeledPool(torch.zeros(6, 4), lambda t: t, None, list(range(1, 7)))
    with pytest.raises(DataError, match="another pool"):
        method.step(Batch(torch.zeros(2, 4), torch.tensor([0, 1]), torch.zeros(4, 4)))


def test_wider_students():
    assert wider_options("mlp", {}, 4) == {"hidden": [256, 256]}
    assert wider_options("small_cnn", {"widths": [16, 32, 64]}, 2) == {"widths": [32, 64, 128]}
    assert wider_options("wrn28_2", {"dropout": 0.1}, 4) == {"dropout": 0.1, "width": 8}
    assert wider_options("mlp", {"hidden": [8]}, 1) == {"hidden": [8]}
    assert wider_options("residual_mlp", {"blocks": 3}, 4) == {"blocks": 3, "width": 256}
    with pytest.raises(ConfigError, match="no width option"):
        wider_options("cnn13", {}, 2)


def test_student_noise_dropout_and_linear_stochastic_depth():
    method = create_method("noisy_student", partial(WideResNet, (3, 8, 8), 3, depth=10, width=1), 3, student_dropout=0.5)
    drops = [m.p for m in method.models["student"].modules() if isinstance(m, DropPath)]
    assert drops == pytest.approx([0.2 / 3, 0.4 / 3, 0.2])  # survival decays linearly to 0.8
    assert all(m.p == 0 for m in method.models["teacher"].modules() if isinstance(m, DropPath))
    assert method.models["student"].dropout.p == 0.5
    default = create_method("noisy_student", partial(WideResNet, (3, 8, 8), 3, depth=10, width=1), 3)
    assert isinstance(default.models["student"].dropout, nn.Identity)  # chosen on validation: no dropout
    assert set_stochastic_depth(MLP((4,), 3), 0.2) == 0
    mlp = MLP((4,), 3, hidden=[5, 6], dropout=0.5)  # dropout on the final layer's input only
    assert [type(m).__name__ for m in mlp.net][-2:] == ["Dropout", "Linear"]
    assert sum(isinstance(m, nn.Dropout) for m in mlp.net) == 1


def test_fixed_randaugment_magnitude_zero_changes_nothing_and_one_does():
    x = torch.rand(4, 3, 8, 8)
    ra = RandAugment("cifar", num_ops=1, cutout=0.0, magnitude=0.0)
    ops = torch.tensor([ra.ops.index(n) for n in ("brightness", "rotate", "posterize", "solarize")])
    assert torch.allclose(ra.apply_round(x, torch.Generator().manual_seed(0), ops), x, atol=1e-5)
    ra.magnitude = 1.0
    assert not torch.allclose(ra.apply_round(x, torch.Generator().manual_seed(0), ops), x, atol=1e-2)
    with pytest.raises(ConfigError, match="magnitude"):
        RandAugment(magnitude=1.5)


# --- the pipeline ---------------------------------------------------------------------------
def digits_config(out, **overrides):
    base = dict(dataset="digits", num_labeled=50, steps=100, eval_every=50, strong_noise=0.15, seed=0,
                device="cpu", progress=False, out=out, batch_size=16, unlabeled_batch_size=32)
    base.update(overrides)
    return TrainConfig(**base)


def test_rounds_write_a_table_and_a_killed_pipeline_resumes(tmp_path, monkeypatch):
    whole = run_noisy_student(digits_config(str(tmp_path / "whole")), 2, str(tmp_path / "whole"), progress=False)
    assert [r["round"] for r in whole["rounds"]] == [0, 1, 2]
    assert whole["rounds"][2]["teacher_test_accuracy"] == whole["rounds"][1]["student_test_accuracy"]
    assert json.load(open(tmp_path / "whole" / "rounds.json")) == whole
    students = [json.load(open(tmp_path / "whole" / f"round-{k}" / "config.json")) for k in (1, 2)]
    assert [c["model_options"] for c in students] == [{"hidden": [256, 256]}] * 2  # 4x the teacher's mlp 64-64
    assert [c["cutout"] for c in students] == [0.0, 0.0]  # the paper's noise: RandAugment without Cutout
    # Kill the second student mid-run (after its checkpoint at step 50), then run the command again.
    out = str(tmp_path / "killed")
    from mentor.methods.noisy_student import NoisyStudent
    original = NoisyStudent.student_step

    def dies_in_round_two(self, batch):
        if self.pseudo_labels.endswith(os.path.join("round-2", "labels")) and self.step_index == 60:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(NoisyStudent, "student_step", dies_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        run_noisy_student(digits_config(out), 2, out, progress=False)
    monkeypatch.setattr(NoisyStudent, "student_step", original)
    round_one = os.path.getmtime(os.path.join(out, "round-1", "summary.json"))
    resumed = run_noisy_student(digits_config(out), 2, out, progress=False)
    assert resumed == whole  # same figures as the run that was never killed
    assert os.path.getmtime(os.path.join(out, "round-1", "summary.json")) == round_one  # not retrained
    with pytest.raises(ConfigError, match="other settings"):
        run_noisy_student(digits_config(out, lr=0.1), 2, out, progress=False)


def test_pseudo_label_command_on_a_npy_pool(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", "digits", "--num-labeled", "50", "--steps", "5", "--out", run,
                 "--no-progress"]) == 0
    np.save(tmp_path / "pool.npy", np.random.default_rng(0).normal(size=(30, 64)).astype(np.float32))
    out = str(tmp_path / "labels")
    assert main(["pseudo-label", run, "--data", str(tmp_path / "pool.npy"), "--out", out, "--shard-size", "8",
                 "--no-progress"]) == 0
    assert read_labels(out).probs.shape == (30, 10) and len(os.listdir(out)) == 5
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    assert main(["pseudo-label", run, "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 2
    assert "shape (5,)" in capsys.readouterr().err


def test_the_stream_makes_no_strong_view_the_student_would_not_use(tiny_dataset):
    from conftest import tiny_config
    from mentor.train import Trainer

    trainer = Trainer(tiny_config("noisy_student"), dataset=tiny_dataset)
    assert not trainer.stream.make_strong and trainer.method.unlabeled_pool.strong is not None
    assert trainer.stream.next().x_u_strong is None


def test_noisy_student_command(tmp_path, capsys):
    out = str(tmp_path / "ns")
    args = ["noisy-student", "--dataset", "digits", "--num-labeled", "50", "--steps", "60", "--batch-size", "16",
            "--unlabeled-batch-size", "32", "--strong-noise", "0.15", "--no-progress"]
    assert main(args + ["--rounds", "1", "--student-width", "2", "--hp", "threshold=0", "--out", out]) == 0
    table = json.load(open(os.path.join(out, "rounds.json")))
    assert [r["round"] for r in table["rounds"]] == [0, 1] and json.loads(capsys.readouterr().out) == table
    student = json.load(open(os.path.join(out, "round-1", "config.json")))
    assert student["model_options"] == {"hidden": [128, 128]} and student["method_options"]["threshold"] == 0
    assert main(args + ["--method", "fixmatch", "--out", str(tmp_path / "other")]) == 2
    assert "drop --method fixmatch" in capsys.readouterr().err
    assert main(args) == 2
    assert "needs --out" in capsys.readouterr().err


def test_pipeline_from_an_existing_teacher_run(tmp_path):
    teacher = str(tmp_path / "teacher")
    assert main(["train", "--dataset", "digits", "--num-labeled", "50", "--steps", "100", "--out", teacher,
                 "--no-progress"]) == 0
    out = str(tmp_path / "ns")
    table = run_noisy_student(digits_config(out), 1, out, teacher=teacher, progress=False)
    assert not os.path.exists(os.path.join(out, "round-0"))
    assert table["rounds"][0]["run"] == teacher
    assert table["rounds"][1]["teacher_test_accuracy"] == json.load(open(os.path.join(teacher, "summary.json")))[
        "final_test_accuracy"]
