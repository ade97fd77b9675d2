"""The command line and the files a run leaves behind."""
import json
import subprocess
import sys

import numpy as np
import pytest

from mentor.cli import main, parse_value
from mentor.data import make_split
from mentor.experiments.two_moons import TwoMoonSettings, run_demo
from mentor.train import Trainer, load_run
from mentor.train.schedule import lr_multiplier

from conftest import blobs, tiny_config


def test_methods_command_lists_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("supervised", "pseudo_label", "meta_pseudo_labels"):
        assert name in out


def test_unknown_method_is_a_clear_error(capsys):
    assert main(["train", "--method", "mpl", "--steps", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'mpl'; choose one of: adamatch, comatch, crmatch, dash, defixmatch, distillation, divide_mix, fixmatch, flexmatch" in err


def test_train_eval_and_resume_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--method", "meta_pseudo_labels", "--dataset", "two_moons", "--num-labeled", "6",
            "--model", "mlp", "--model-hp", "hidden=8,8", "activation=sigmoid", "--steps", "20",
            "--eval-every", "10", "--unlabeled-batch-size", "64", "--hp", "feedback=cosine",
            "--strong-noise", "0.1", "--out", out, "--no-progress", "--seed", "3"]
    assert main(args) == 0
    summary = json.load(open(f"{out}/summary.json"))
    assert summary["steps"] == 20 and summary["method_hparams"]["feedback"] == "cosine"
    assert summary["config"]["model_options"] == {"hidden": [8, 8], "activation": "sigmoid"}
    assert summary["seconds_per_step"] > 0 and 0 <= summary["final_test_accuracy"] <= 1
    lines = [json.loads(line) for line in open(f"{out}/metrics.jsonl")]
    assert [m["step"] for m in lines] == [10, 20]
    assert "teacher_uda" in lines[0]["train"] and "h" in lines[0]["train"]
    split = json.load(open(f"{out}/split.json"))
    assert len(split["labeled"]) == 6 and split["seed"] == 3
    capsys.readouterr()
    assert main(["eval", out]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_accuracy"] == pytest.approx(summary["final_test_accuracy"])
    assert main(args) == 2  # refuses to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # a finished run resumes as a no-op


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "mentor.cli", "methods"], capture_output=True, text=True)
    assert result.returncode == 0 and "meta_pseudo_labels" in result.stdout


def test_parse_value():
    assert parse_value("0.5") == 0.5 and parse_value("3") == 3 and parse_value("none") is None
    assert parse_value("8,8") == [8, 8] and parse_value("true") is True and parse_value("dot") == "dot"
    assert main(["train", "--hp", "feedback"]) == 2


def test_split_is_seeded_balanced_and_saved(tmp_path):
    y = np.repeat(np.arange(4), 50)
    a = make_split(y, 10, 4, seed=7)
    assert a.labeled == make_split(y, 10, 4, seed=7).labeled
    assert a.labeled != make_split(y, 10, 4, seed=8).labeled
    counts = np.bincount(y[a.labeled], minlength=4)
    assert sorted(counts) == [2, 2, 3, 3]
    a.save(str(tmp_path / "s.json"))
    assert type(a).load(str(tmp_path / "s.json")) == a


def test_ema_is_evaluated_and_restored(tmp_path):
    out = str(tmp_path / "run")
    summary = Trainer(tiny_config("supervised", out=out, ema_decay=0.9), dataset=blobs()).fit()
    assert "final_ema_test_accuracy" in summary
    trainer = load_run(out, device="cpu", dataset=blobs())
    assert trainer.evaluate()["ema_test_accuracy"] == pytest.approx(summary["final_ema_test_accuracy"])


def test_schedule_shapes():
    assert lr_multiplier(0, 100, "constant") == 1.0
    assert lr_multiplier(0, 100, "cosine") == 1.0 and lr_multiplier(100, 100, "cosine") == pytest.approx(0)
    assert lr_multiplier(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(0, 100, "cosine", warmup_steps=10) == pytest.approx(0.1)


def test_digits_dataset_trains():
    summary = Trainer(tiny_config("supervised", dataset="digits", num_labeled=50, steps=30,
                                  model_options={"hidden": [32]}, strong_noise=None, eval_every=0),
                      dataset=None).fit()
    assert summary["dataset"] == "digits" and summary["final_test_accuracy"] > 0.3


def test_demo_writes_table_figure_and_json(tmp_path, capsys):
    report = run_demo(seeds=2, out=str(tmp_path), workers=1, progress=False,
                      settings=TwoMoonSettings(steps=40, unlabeled_batch_size=128))
    printed = capsys.readouterr().out
    assert "Meta Pseudo Labels" in printed and "Pseudo Labels" in printed and "Supervised" in printed
    saved = json.load(open(tmp_path / "two_moons.json"))
    assert saved == json.loads(json.dumps(report))
    for name in ("supervised", "pseudo_label", "meta_pseudo_labels"):
        row = saved["methods"][name]
        assert set(row) == {"success_rate", "mean_accuracy", "accuracies"} and len(row["accuracies"]) == 2
    assert saved["settings"]["steps"] == 40 and saved["settings"]["num_labeled"] == 6
    assert (tmp_path / "two_moons.png").stat().st_size > 10_000


def test_a_mode_named_none_on_the_command_line_is_the_string(tmp_path):
    """`--hp feedback=none` (the MPL control): the parser reads "none" as None, which must reach
    the method as the mode "none", not as a missing value."""
    out = str(tmp_path / "control")
    assert main(["train", "--method", "meta_pseudo_labels", "--dataset", "two_moons", "--num-labeled", "6",
                 "--steps", "4", "--eval-every", "0", "--unlabeled-batch-size", "16", "--hp", "feedback=none",
                 "--out", out, "--no-progress"]) == 0
    assert json.load(open(f"{out}/summary.json"))["method_hparams"]["feedback"] == "none"


@pytest.mark.parametrize("name, rows, features, classes", [("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2)])
def test_bundled_tables_are_split_and_scaled_on_training_data_only(name, rows, features, classes):
    from mentor.data import load_dataset

    ds = load_dataset(name, seed=3)
    assert len(ds.x_train) + len(ds.x_test) == rows and ds.x_train.shape[1] == features
    assert ds.num_classes == classes and set(np.unique(ds.y_test)) == set(range(classes))
    assert np.allclose(ds.x_train.mean(0), 0, atol=1e-5) and np.allclose(ds.x_train.std(0), 1, atol=1e-4)
    assert not np.allclose(ds.x_test.mean(0), 0, atol=1e-3)  # scaled with the training statistics
    assert not np.array_equal(load_dataset(name, seed=4).y_test, ds.y_test)  # the split follows the seed
