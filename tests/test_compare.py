"""mentor compare: folds of the labels, pooled and paired intervals, verdicts, the choice, resume, studies."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mentor import SemiSupervisedClassifier
from mentor.cli import main
from mentor.compare import compare, format_tables
from mentor.compare.stats import bootstrap_interval, smallest_detectable, split_figures, unit_means, verdict
from mentor.data import make_split
from mentor.data.splits import restrict_classes
from mentor.data.sources.builtin import load_digits
from mentor.data.splits import shape_pool
from mentor.errors import ConfigError, DataError
from mentor.train import TrainConfig

from conftest import blobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digits_config(**overrides):
    values = dict(dataset="digits", num_labeled=30, steps=20, batch_size=16, unlabeled_batch_size=32, eval_every=10,
                  model_options={"hidden": [16]}, device="cpu", progress=False)
    values.update(overrides)
    return TrainConfig(**values)


# --- splits ---------------------------------------------------------------------------
def test_folds_partition_the_labels_stratified_and_seeded():
    y = np.repeat(np.arange(4), 30)
    whole = make_split(y, 40, 4, seed=1)
    folds = [make_split(y, 40, 4, seed=1, validation_fold=(k, 5), fold_seed=7) for k in range(5)]
    held = [set(f.validation) for f in folds]
    assert set().union(*held) == set(whole.labeled) and sum(map(len, held)) == 40  # each label held out once
    for f in folds:
        assert set(f.labeled) == set(whole.labeled) - set(f.validation)
        assert np.bincount(y[f.validation], minlength=4).tolist() == [2, 2, 2, 2]  # stratified
        assert not set(f.validation) & set(f.unlabeled)  # held-out examples are not in the pool
    again = make_split(y, 40, 4, seed=1, validation_fold=(2, 5), fold_seed=7)
    other = make_split(y, 40, 4, seed=1, validation_fold=(2, 5), fold_seed=8)
    assert again.validation == folds[2].validation and other.validation != folds[2].validation


def test_too_few_labels_per_class_for_the_folds_is_named():
    y = np.repeat(np.arange(3), 20)
    with pytest.raises(DataError, match=r"class \d has 3 labeled example\(s\), fewer than the 5 validation folds.*"
                                        r"--folds 3"):
        make_split(y, 9, 3, seed=0, validation_fold=(0, 5))


def test_pool_fraction_is_nested_and_mismatch_keeps_the_size():
    pool = np.arange(1000)  # 0..599 the labeled classes' examples, 600..999 the others'
    tenth, half = shape_pool(pool, 600, seed=3, fraction=0.1), shape_pool(pool, 600, seed=3, fraction=0.5)
    assert len(tenth) == 100 and len(half) == 500 and set(tenth) <= set(half)
    for rate in (0.0, 0.25, 1.0):
        mixed = shape_pool(pool, 600, seed=3, mismatch=rate)
        assert len(mixed) == 400 and (mixed >= 600).sum() == round(rate * 400)


def test_restricted_classes_relabel_and_send_the_others_to_the_pool():
    ds = load_digits(seed=0)
    sub = restrict_classes(ds, [3, 5])
    assert sub.num_classes == 2 and set(sub.y_train.tolist()) == {0, 1} and sub.class_names == ["3", "5"]
    assert len(sub.x_train) == (ds.y_train == 3).sum() + (ds.y_train == 5).sum()
    assert len(sub.x_unlabeled) == len(ds.x_train) - len(sub.x_train)
    assert len(sub.x_test) == np.isin(ds.y_test, [3, 5]).sum()
    with pytest.raises(DataError, match="class mismatch needs a dataset whose every training example has a class"):
        restrict_classes(blobs(), [0, 1])


# --- statistics -----------------------------------------------------------------------
def test_paired_interval_and_verdicts():
    rng = np.random.default_rng(0)
    keys = np.arange(200, dtype=np.uint64)
    truth = rng.integers(0, 3, 200)
    reference = truth.copy()
    reference[:60] = (truth[:60] + 1) % 3  # wrong on 60
    better = truth.copy()
    better[:20] = (truth[:20] + 1) % 3  # wrong on 20 of the same 60: right on 40 more
    pack = lambda pred: [{"val_key": keys, "val_true": truth, "val_pred": pred}]  # noqa: E731
    helps = split_figures(pack(better), pack(reference), "val", 2000, 0)
    assert helps["difference"] == pytest.approx(0.2) and helps["verdict"] == "helps"
    assert helps["difference_interval"][0] > 0.1
    hurts = split_figures(pack(reference), pack(better), "val", 2000, 0)
    assert hurts["verdict"] == "hurts"
    same = split_figures(pack(reference), pack(reference), "val", 2000, 0)
    assert same["difference_interval"] == [0.0, 0.0] and same["verdict"] == "no measurable difference"
    assert verdict(-0.01, 0.02) == "no measurable difference"


def test_an_example_seen_in_several_cells_is_one_unit():
    keys = np.array([5, 5, 7, 9], dtype=np.uint64)
    assert unit_means(keys, np.array([1.0, 0.0, 1.0, 1.0])).tolist() == [0.5, 1.0, 1.0]
    lo, hi = bootstrap_interval(np.ones(50), 500, 0)
    assert lo == hi == 1.0
    # the resolution's floor: k wins and no loss among n examples is the least that excludes zero
    for n in (30, 100, 1000):
        k = smallest_detectable(n)
        wins = np.r_[np.ones(k), np.zeros(n - k)]
        assert bootstrap_interval(wins, 4000, 1)[0] > 0
        assert bootstrap_interval(np.r_[np.ones(k - 2), np.zeros(n - k + 2)], 4000, 1)[0] == 0


# --- the comparison -----------------------------------------------------------------------
def test_compare_pairs_cells_chooses_on_validation_and_reports(tmp_path):
    out = str(tmp_path / "cmp")
    result = compare(digits_config(), methods=["fixmatch", "logistic_regression", "label_spreading"], folds=3,
                     out=out, progress=False, rule="validation")
    table = result["tables"]["all"]
    labels = [r["label"] for r in table["rows"]]
    # supervised added, first; the ensemble of what the cells hold, last
    assert labels == ["supervised", "fixmatch", "logistic_regression", "label_spreading", "ensemble"]
    assert len(result["cells"]) == 4 * 3
    rows = {r["label"]: r for r in table["rows"]}
    assert rows["supervised"]["val"]["units"] == 30  # every label held out once over the 3 folds
    singles = [r for r in table["rows"] if r["label"] != "ensemble"]
    assert table["rule"] == "validation"
    assert table["chosen"] == max(singles, key=lambda r: r["val"]["accuracy"])["label"]
    best_test = max(r["test_accuracy"] for r in table["rows"])
    assert table["regret"] == pytest.approx(best_test - rows[table["chosen"]]["test_accuracy"])
    assert table["best_network"] in ("supervised", "fixmatch")
    # a network cell is an ordinary run folder; the pairs hold the same examples
    cell = os.path.join(out, "cells", "all", "fixmatch", "seed0-fold1")
    for name in ("config.json", "split.json", "summary.json", "checkpoint.pt", "predictions.npz", "cell.json"):
        assert os.path.exists(os.path.join(cell, name)), name
    ref = np.load(os.path.join(out, "cells", "all", "supervised", "seed0-fold1", "predictions.npz"))
    assert np.array_equal(np.load(os.path.join(cell, "predictions.npz"))["val_key"], ref["val_key"])
    assert json.load(open(os.path.join(cell, "split.json")))["validation"] == ref["val_index"].tolist()
    saved = json.load(open(os.path.join(out, "compare.json")))
    assert saved["tables"]["all"]["chosen"] == table["chosen"]
    for name in ("report.html", "compare-accuracy.png", "compare-time.png"):
        assert os.path.getsize(os.path.join(out, name)) > 1000
    text = format_tables(result)
    assert "Resolution: 30 distinct held-out examples; no difference under 13.3 points" in text
    assert "Choice:" in text and "regret" in text
    from mentor.report import write_report  # `mentor report` opens any cell

    assert os.path.exists(next(iter(write_report([cell], str(tmp_path / "r" / "report.html")))))


def test_resume_keeps_finished_cells_and_takes_new_methods(tmp_path):
    out = str(tmp_path / "cmp")
    first = compare(digits_config(), methods=["supervised"], folds=2, out=out, progress=False, baselines=[])
    kept = os.path.join(out, "cells", "all", "supervised", "seed0-fold0", "cell.json")
    stamp = os.stat(kept).st_mtime_ns
    interrupted = os.path.join(out, "cells", "all", "supervised", "seed0-fold1")
    os.remove(os.path.join(interrupted, "cell.json"))  # killed after its last checkpoint
    with pytest.raises(ConfigError, match="already holds a comparison; pass --resume"):
        compare(digits_config(), methods=["supervised"], folds=2, out=out, progress=False, baselines=[])
    with pytest.raises(ConfigError, match=r"other settings \(steps: 20 then, 30 now\)"):  # --fit-best continues it,
        compare(digits_config(steps=30), methods=["supervised"], folds=2, out=out, progress=False, fit_best=True)
    with pytest.raises(ConfigError, match=r"other settings \(steps: 20 then, 30 now\)"):
        compare(digits_config(steps=30), methods=["supervised"], folds=2, out=out, progress=False, resume=True)
    again = compare(digits_config(), methods=["supervised", "logistic_regression"], folds=2, out=out,
                    progress=False, resume=True, baselines=[])
    assert os.stat(kept).st_mtime_ns == stamp  # a finished cell is not trained again
    before = {c["cell"]: c["val_accuracy"] for c in first["cells"]}
    after = {c["cell"]: c["val_accuracy"] for c in again["cells"]}
    assert all(after[k] == v for k, v in before.items())  # the resumed cell ends where it would have
    assert [r["label"] for r in again["tables"]["all"]["rows"]] == ["supervised", "logistic_regression", "ensemble"]


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'fixmath' in --methods; choose from: adamatch, comatch, crmatch"):
        compare(digits_config(), methods=["fixmath"], out=str(tmp_path / "a"), progress=False)
    with pytest.raises(DataError, match="fewer than the 5 validation folds"):
        compare(digits_config(num_labeled=20), methods=["supervised"], out=str(tmp_path / "b"), progress=False)
    with pytest.raises(DataError, match="class mismatch needs a dataset"):
        compare(digits_config(dataset="npz"), dataset=blobs(n_train=90), methods=["supervised"], folds=2,
                class_mismatch=[0.5], out=str(tmp_path / "c"), progress=False)
    with pytest.raises(ConfigError, match="--folds 1"):
        compare(digits_config(), folds=1, out=str(tmp_path / "d"), progress=False)


def test_class_mismatch_and_unlabeled_fraction_studies(tmp_path):
    out = str(tmp_path / "study")
    result = compare(digits_config(num_labeled=18), methods=["fixmatch"], folds=2, out=out, progress=False,
                     baselines=[], labeled_classes=[0, 1, 2], class_mismatch=[0.0, 1.0], unlabeled_fractions=[0.5])
    assert list(result["tables"]) == ["mismatch-0_unlabeled-0.5", "mismatch-1_unlabeled-0.5"]
    ds = restrict_classes(load_digits(seed=0), [0, 1, 2])
    pools = {}
    for rate in ("0", "1"):
        folder = os.path.join(out, "cells", f"mismatch-{rate}_unlabeled-0.5", "fixmatch", "seed0-fold0")
        config = json.load(open(os.path.join(folder, "config.json")))
        assert config["class_mismatch"] == float(rate) and config["labeled_classes"] == [0, 1, 2]
        assert json.load(open(os.path.join(folder, "summary.json")))["num_labeled"] == 9  # 18 labels, 2 folds
        pools[rate] = json.load(open(os.path.join(folder, "split.json")))["unlabeled"]
    assert all(i < len(ds.x_train) for i in pools["0"]) and all(i >= len(ds.x_train) for i in pools["1"])
    assert len(pools["0"]) == len(pools["1"])  # the pool's size is fixed; only its composition moves
    assert "Across the study" in format_tables(result)
    assert os.path.exists(os.path.join(out, "compare-study.png"))


def test_fit_best_is_a_run_that_predicts_and_exports(tmp_path):
    import mentor

    out = str(tmp_path / "cmp")
    result = compare(digits_config(), methods=["supervised", "uda"], folds=2, out=out, progress=False, fit_best=True,
                     rule="validation")
    best = result["best"]
    assert best["kind"] == "network" and best["steps"] == 20
    assert best["label"] == result["tables"]["all"]["chosen"] == result["tables"]["all"]["best_network"]
    model = mentor.load_model(os.path.join(out, "best"))
    x = load_digits(seed=0).x_test[:5]
    assert model.predict_proba(x).shape == (5, 10)
    mentor.export_model(os.path.join(out, "best"), str(tmp_path / "best.pt2"))
    program, _ = mentor.load_export(str(tmp_path / "best.pt2"))
    import torch

    assert np.allclose(program(torch.as_tensor(x)).detach().numpy(), model.predict_proba(x), atol=1e-5)


def test_estimator_auto_chooses_on_folds_of_its_labels():
    ds = blobs(n_train=60, n_extra=60)
    x = np.concatenate([ds.x_train, ds.x_unlabeled])
    y = np.concatenate([ds.y_train, -np.ones(len(ds.x_unlabeled), dtype=int)])
    clf = SemiSupervisedClassifier(method="auto", candidates=["supervised", "fixmatch:threshold=0.8"], folds=3,
                                   steps=15, batch_size=8, unlabeled_batch_size=16)
    clf.fit(x, y)
    labels = [r["label"] for r in clf.comparison_["rows"]]
    assert clf.chosen_method_ in labels
    assert labels[:2] == ["supervised", "fixmatch:threshold=0.8"] and "label_spreading" in labels  # baselines too
    assert clf.score(ds.x_test, ds.y_test) > 0.5
    with pytest.raises(ConfigError, match="with method='auto' give them inside candidates"):
        SemiSupervisedClassifier(method="auto", threshold=0.9).fit(x, y)


def test_cli_compare_runs_two_jobs_and_resumes_after_a_kill(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    args = ["compare", "--dataset", "digits", "--num-labeled", "30", "--steps", "1500", "--batch-size", "16",
            "--unlabeled-batch-size", "32", "--model-hp", "hidden=16", "--methods", "supervised", "fixmatch",
            "--baselines", "none", "--folds", "3", "--jobs", "2", "--out", out, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    process = subprocess.Popen([sys.executable, "-m", "mentor.cli", *args], cwd=str(tmp_path), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cells = os.path.join(out, "cells", "all")
    finished = lambda: [os.path.join(r, f) for r, _, fs in os.walk(cells) for f in fs if f == "cell.json"]  # noqa: E731
    deadline = time.time() + 120
    while len(finished()) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the comparison and its workers, mid-way
    process.wait()
    done = {path: os.stat(path).st_mtime_ns for path in finished()}
    assert 2 <= len(done) < 6, "the kill came too late to test a resume"
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "| fixmatch |" in printed and "Choice:" in printed
    assert all(os.stat(path).st_mtime_ns == stamp for path, stamp in done.items())  # kept, not retrained
    result = json.load(open(os.path.join(out, "compare.json")))
    assert len(result["cells"]) == 6 and result["settings"]["jobs"] == 2


def test_demo_is_the_comparison_and_two_moons_one_word_away():
    from mentor.cli import build_parser
    from mentor.experiments.compare_demo import DEMO, DEMO_SEEDS

    assert build_parser().parse_args(["demo"]).which == "compare"
    assert build_parser().parse_args(["demo", "two-moons", "--seeds", "2"]).which == "two-moons"
    assert DEMO["dataset"] == "digits" and DEMO["num_labeled"] == 50 and len(DEMO_SEEDS) == 2


def test_folds_zero_is_a_test_split_benchmark_with_paired_intervals(tmp_path):
    result = compare(digits_config(), methods=["supervised", "fixmatch", "logistic_regression"], seeds=[0, 1],
                     folds=0, out=str(tmp_path / "bench"), progress=False)
    table = result["tables"]["all"]
    assert table["chosen"] is None and "regret" not in table  # nothing is chosen on a test split
    rows = {r["label"]: r for r in table["rows"]}
    assert "val" not in rows["fixmatch"] and rows["fixmatch"]["test"]["units"] > 400  # two seeds' test splits
    assert rows["fixmatch"]["test"]["verdict"] in ("helps", "no measurable difference", "hurts")
    summary = json.load(open(tmp_path / "bench" / "cells" / "all" / "fixmatch" / "seed1-fold0" / "summary.json"))
    assert summary["num_labeled"] == 30 and summary["config"]["validation_fold"] is None  # every label trains
    assert "No validation folds (--folds 0)" in format_tables(result)
