"""What a comparison finds, the user gets as a model: a classical baseline or the ensemble delivered by
--fit-best and method="auto", served by predict, export and report; the ensemble entry; the choice rules;
the classical baselines' small-data settings; AutoGluon's entry."""
import csv
import json
import os
import pickle
import sys

import numpy as np
import pytest

import mentor
from mentor import SemiSupervisedClassifier
from mentor.classical import load_model_file, onnx_model, probabilities, save_model
from mentor.cli import main
from mentor.compare import compare
from mentor.compare.baselines import AutoGluonClassifier, fit_baseline, gradient_boosting_leaf
from mentor.compare.ensemble import greedy_selection, nested_optimism
from mentor.compare.stats import choose, smallest_detectable
from mentor.errors import CheckpointError, ConfigError
from mentor.train import TrainConfig

onnxruntime = pytest.importorskip("onnxruntime")


def moons_table(folder, labeled_per_class=9, unlabeled=300, test=120, seed=0):
    """Two interleaved moons as CSV tables (columns x1, x2, side): a few labeled rows, many with an
    empty label, and a labeled test file. The classic case where LabelSpreading wins."""
    from sklearn.datasets import make_moons

    x, y = make_moons(2 * labeled_per_class + unlabeled + test, noise=0.08, random_state=seed)
    x = x * [3.0, 5.0] + [10.0, -2.0]  # raw units: the delivered model must scale them itself
    names = np.array(["left", "right"])[y]
    order = np.concatenate([np.flatnonzero(y == c)[:labeled_per_class] for c in (0, 1)])
    rest = np.setdiff1d(np.arange(len(y)), order)
    pool, held = rest[:unlabeled], rest[unlabeled:]

    def write(path, rows, label):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["x1", "x2", "side"])
            for i in rows:
                w.writerow([f"{x[i, 0]:.6f}", f"{x[i, 1]:.6f}", names[i] if label else ""])

    train, test_path = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
    with open(train, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "side"])
        for i in order:
            w.writerow([f"{x[i, 0]:.6f}", f"{x[i, 1]:.6f}", names[i]])
        for i in pool:
            w.writerow([f"{x[i, 0]:.6f}", f"{x[i, 1]:.6f}", ""])
    write(test_path, held, True)
    return train, test_path, x[held], names[held]


def compare_args(train, test, out, *extra):
    return ["compare", "--dataset", "table", "--data-path", train, "--target", "side", "--test-path", test,
            "--steps", "30", "--batch-size", "8", "--unlabeled-batch-size", "16", "--model-hp", "hidden=8",
            "--methods", "supervised", "logistic_regression", "gradient_boosting", "label_spreading", "--folds", "3",
            "--out", out, "--no-progress", *extra]


def test_label_spreading_wins_and_is_delivered_predicted_exported_and_reported(tmp_path, capsys):
    train, test, x_test, names = moons_table(str(tmp_path))
    out = str(tmp_path / "cmp")
    assert main(compare_args(train, test, out, "--fit-best", "--choice-rule", "validation")) == 0
    printed = capsys.readouterr().out
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["tables"]["all"]["chosen"] == "label_spreading", printed
    assert result["best"]["kind"] == "classical" and "label_spreading (fitted on every label)" in printed
    best = os.path.join(out, "best")
    assert os.path.exists(os.path.join(best, "model.skops")) and not os.path.exists(os.path.join(best, "checkpoint.pt"))

    # mentor predict: the table's own class names, probabilities per class, raw feature columns
    assert main(["predict", best, "--data", test, "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["row", "prediction", "p_left", "p_right"]
    predicted = np.array([r["prediction"] for r in rows])
    assert np.mean(predicted == names) > 0.9  # the moons are LabelSpreading's own case
    model = mentor.load_model(best)
    assert model.which == "classical" and model.classes_.tolist() == ["left", "right"]
    proba = model.predict_proba(x_test.astype(np.float32))
    assert np.allclose(proba.sum(1), 1, atol=1e-5) and np.array_equal(model.classes_[proba.argmax(1)], predicted)

    # ONNX: LabelSpreading as the k-NN classifier over its spread labels, the table's scaling inside
    assert main(["export", best, "--out", str(tmp_path / "m.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    onnx_proba = session.run(None, {"x": x_test.astype(np.float32)})[0]
    assert np.abs(onnx_proba - proba).max() < 1e-4
    assert json.load(open(str(tmp_path / "m.onnx") + ".json"))["classes"] == ["left", "right"]
    assert main(["export", best, "--out", str(tmp_path / "m.pt2")]) == 2
    assert "export it to .onnx" in capsys.readouterr().err

    # mentor report opens it: no curves, its test confusion matrix, what it is
    assert main(["report", best, "--out", str(tmp_path / "r" / "report.html")]) == 0
    page = open(tmp_path / "r" / "report.html").read()
    assert "a classical model, LabelSpreading" in page and os.path.exists(tmp_path / "r" / "confusion-0.png")

    # an export that cannot be done names the reason, in one line
    cell = os.path.join(out, "cells", "all", "gradient_boosting", "seed0-fold0")
    assert main(["export", cell, "--out", str(tmp_path / "g.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mentor: error: HistGradientBoostingClassifier") and "Traceback" not in err
    assert not os.path.exists(tmp_path / "g.onnx")


def test_the_ensemble_is_scored_as_it_is_delivered(tmp_path):
    from mentor.data.sources.builtin import load_digits

    config = TrainConfig(dataset="digits", num_labeled=30, steps=20, batch_size=16, unlabeled_batch_size=32,
                         model_options={"hidden": [16]}, device="cpu", progress=False)
    out = str(tmp_path / "cmp")
    result = compare(config, methods=["supervised", "logistic_regression", "random_forest"], folds=3, out=out,
                     progress=False, fit_best=True, rule="ensemble")
    table = result["tables"]["all"]
    rows = {r["label"]: r for r in table["rows"]}
    assert table["chosen"] == "ensemble" and result["best"]["kind"] == "ensemble"
    # in-sample, greedy selection never scores under its best single entry
    assert rows["ensemble"]["val"]["accuracy"] >= max(rows[e]["val"]["accuracy"] for e in table["ensemble"]["candidates"])
    assert abs(sum(m["weight"] for m in table["ensemble"]["members"]) - 1) < 1e-9
    optimism = table["ensemble"]["optimism"]
    assert optimism["in_sample"] == pytest.approx(rows["ensemble"]["val"]["accuracy"])
    # the delivered model (every member's fold models, weighted) gives the test figure compare reported
    model = mentor.load_model(os.path.join(out, "best"))
    ds = load_digits(seed=0)
    raw = ds.x_test * 16  # the 0-16 pixel counts: the model scales them itself (inference.json)
    assert np.mean(model.predict(raw) == ds.y_test) == pytest.approx(rows["ensemble"]["test_accuracy"])
    assert len(model.members) == 3 * len(table["ensemble"]["members"])
    summary = json.load(open(os.path.join(out, "best", "summary.json")))
    assert summary["final_test_accuracy"] == pytest.approx(rows["ensemble"]["test_accuracy"])
    # ensemble.json is checked on load: weights >= 0 summing to 1, each member the one delivered
    import shutil

    listing = json.load(open(os.path.join(out, "best", "ensemble.json")))
    assert all(len(m["sha256"]) == 64 for m in listing["members"])

    def tampered(name, change):
        folder = tmp_path / name
        shutil.copytree(os.path.join(out, "best"), folder)
        edited = json.loads(json.dumps(listing))
        change(edited, folder)
        json.dump(edited, open(folder / "ensemble.json", "w"))
        return str(folder)

    def negative(e, _):
        e["members"][0]["weight"] -= 1.0
        e["members"][1]["weight"] += 1.0

    def doubled(e, _):
        e["members"][0]["weight"] *= 2

    def swapped(e, folder):
        files = [folder / m["folder"] / m["model_file"] for m in e["members"]]
        other = next(f for f in files[1:] if f.name == files[0].name and f.read_bytes() != files[0].read_bytes())
        shutil.copy(other, files[0])

    with pytest.raises(CheckpointError, match="member weights must be >= 0"):
        mentor.load_model(tampered("negative", negative))
    with pytest.raises(CheckpointError, match="member weights sum to"):
        mentor.load_model(tampered("doubled", doubled))
    with pytest.raises(CheckpointError, match="not the member that was delivered"):
        mentor.load_model(tampered("swapped", swapped))
    # --deliver refit: each member fitted on every label (OUT/refit/ENTRY), at its validated weight
    refit = compare(config, methods=["supervised", "logistic_regression", "random_forest"], folds=3, out=out,
                    progress=False, fit_best=True, rule="ensemble", deliver="refit")
    assert refit["best"]["kind"] == "ensemble" and refit["best"]["deliver"] == "refit"
    model = mentor.load_model(os.path.join(out, "best"))
    members = table["ensemble"]["members"]
    assert len(model.members) == len(members) and model.weights == pytest.approx([m["weight"] for m in members])
    alone = [mentor.load_model(os.path.join(out, "refit", m["entry"])) for m in members]
    np.testing.assert_allclose(model.predict_proba(raw), sum(m["weight"] * a.predict_proba(raw)
                                                             for m, a in zip(members, alone)), atol=1e-6)
    assert np.mean(model.predict(raw) == ds.y_test) == pytest.approx(refit["best"]["test_accuracy"])
    # --deliver bag for a single entry: its fold models at equal weights
    bag = compare(config, methods=["supervised", "logistic_regression", "random_forest"], folds=3, out=out,
                  progress=False, fit_best=True, rule="validation", deliver="bag")
    chosen = bag["tables"]["all"]["chosen"]
    model = mentor.load_model(os.path.join(out, "best"))
    assert bag["best"]["kind"] == "ensemble" and model.weights == pytest.approx([1 / 3] * 3)
    folds = [mentor.load_model(os.path.join(out, "cells", "all", chosen, f"seed0-fold{k}")) for k in range(3)]
    np.testing.assert_allclose(model.predict_proba(raw), np.mean([f.predict_proba(raw) for f in folds], axis=0),
                               atol=1e-6)
    assert np.mean(model.predict(raw) == ds.y_test) == pytest.approx(bag["best"]["test_accuracy"])


def test_an_ensemble_of_a_network_and_a_classical_model_exports_to_one_onnx_graph(tmp_path):
    from mentor.data.sources.builtin import load_digits

    config = TrainConfig(dataset="digits", num_labeled=30, steps=20, batch_size=16, unlabeled_batch_size=32,
                         model_options={"hidden": [16]}, device="cpu", progress=False)
    out = str(tmp_path / "cmp")
    compare(config, methods=["supervised", "logistic_regression"], folds=2, out=out, progress=False)
    folder = tmp_path / "both"
    folder.mkdir()
    import shutil

    for name in ("supervised", "logistic_regression"):
        shutil.copytree(os.path.join(out, "cells", "all", name, "seed0-fold0"), folder / name)
    shutil.copy(folder / "supervised" / "inference.json", folder / "inference.json")
    json.dump({"format": 1, "members": [{"folder": "supervised", "weight": 0.3},
                                        {"folder": "logistic_regression", "weight": 0.7}]},
              open(folder / "ensemble.json", "w"))
    model = mentor.load_model(str(folder))
    x = load_digits(seed=0).x_test[:50]
    network, classical = (mentor.load_model(str(folder / n)) for n in ("supervised", "logistic_regression"))
    assert np.allclose(model.predict_proba(x), 0.3 * network.predict_proba(x) + 0.7 * classical.predict_proba(x),
                       atol=1e-6)
    mentor.export_model(str(folder), str(tmp_path / "e.onnx"))
    got = onnxruntime.InferenceSession(str(tmp_path / "e.onnx")).run(None, {"x": x.astype(np.float32)})[0]
    assert np.abs(got - model.predict_proba(x)).max() < 1e-4
    with pytest.raises(ConfigError, match="holds one model"):
        mentor.load_model(str(folder), model="teacher")


def test_greedy_selection_finds_a_combination_and_its_optimism_is_measured():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    # three models, each right on its own random 70% of the rows: their majority is right more often;
    # a fourth, confidently wrong everywhere, is never worth adding
    models = []
    for confidence in (0.8, 0.79, 0.78):
        right = rng.random(400) < 0.7
        p = np.full((400, 2), 1 - confidence)
        p[np.arange(400), np.where(right, y, 1 - y)] = confidence
        models.append(p)
    wrong = np.full((400, 2), 0.99)
    wrong[np.arange(400), y] = 0.01
    weights = greedy_selection([wrong, *models], y)
    assert weights[0] == 0 and np.all(weights[1:] > 0) and abs(weights.sum() - 1) < 1e-12
    single = max(np.mean(p.argmax(1) == y) for p in models)
    combined = np.mean(sum(w * p for w, p in zip(weights[1:], models)).argmax(1) == y)
    assert combined > single + 0.03
    nested = nested_optimism([wrong, *models], y, np.arange(400, dtype=np.uint64), seed=0, repeats=3)
    assert nested["in_sample"] == pytest.approx(combined) and -0.05 < nested["optimism"] < 0.2


def test_the_choice_rules_choose_as_written():
    def row(label, acc, lo=None, baseline=False, kind=None, test=None):
        r = {"label": label, "baseline": baseline, "val": {"accuracy": acc, "units": 50, "discordant": 0.1,
                                                             "difference_interval": [lo, lo + 0.1] if lo is not None else None}}
        if kind:
            r["kind"] = kind
        if test is not None:
            r["test_accuracy"] = test
        return r

    rows = [row("supervised", 0.70, test=0.71), row("fixmatch", 0.78, lo=-0.02, test=0.70),
            row("uda", 0.75, lo=0.01, test=0.76), row("logistic_regression", 0.72, lo=-0.05, baseline=True, test=0.74),
            row("autogluon", 0.9, lo=0.1, baseline=True, kind="reference", test=0.9),
            row("ensemble", 0.80, lo=0.02, kind="ensemble", test=0.77)]
    rows[0]["val"]["difference_interval"] = None
    assert choose(rows, "supervised", "validation")["chosen"] == "fixmatch"  # never the reference row
    assert choose(rows, "supervised", "significant")["chosen"] == "uda"
    assert choose(rows, "supervised", "ensemble")["chosen"] == "ensemble"
    assert choose(rows, "supervised", "validation+ensemble")["chosen"] == "ensemble"
    rows[2]["val"]["difference_interval"] = [-0.01, 0.09]  # nothing measurably above supervised training
    out = choose(rows, "supervised", "significant")
    assert out["chosen"] == "logistic_regression"  # the best of supervised and the baselines
    assert out["rule_regrets"] == pytest.approx({"validation": 0.07, "significant": 0.03, "ensemble": 0.0,
                                                 "validation+ensemble": 0.0})
    with pytest.raises(ValueError, match="unknown choice rule"):
        choose(rows, "supervised", "luck")
    # validation+ensemble: a tie, or a lead under the resolution (50 held-out labels: 4 examples, 8
    # points), goes to the ensemble; a lead the labels can show goes to the single entry
    assert smallest_detectable(50) == 4
    for fixmatch, chosen in ((0.80, "ensemble"), (0.87, "ensemble"), (0.89, "fixmatch")):
        rows[1]["val"]["accuracy"] = fixmatch
        assert choose(rows, "supervised", "validation+ensemble")["chosen"] == chosen, fixmatch


def test_estimator_auto_delivers_the_classical_model_when_it_wins(tmp_path):
    from sklearn.datasets import make_moons

    x, y = make_moons(400, noise=0.1, random_state=1)
    rng = np.random.default_rng(1)
    labeled = np.r_[rng.choice(np.flatnonzero(y == 0), 9, replace=False), rng.choice(np.flatnonzero(y == 1), 9,
                                                                                      replace=False)]
    y_partial = np.where(np.isin(np.arange(400), labeled), np.array(["a", "b"])[y], "")  # "" marks unlabeled
    clf = SemiSupervisedClassifier(method="auto", candidates=["supervised"], folds=3, steps=20, batch_size=8,
                                   unlabeled_batch_size=16, unlabeled="", choice_rule="validation",
                                   baselines=["logistic_regression", "label_spreading"])
    clf.fit(x, y_partial)
    assert clf.chosen_method_ == "label_spreading" and clf.chosen_kind_ == "classical"
    proba = clf.predict_proba(x)
    assert proba.shape == (400, 2) and np.array_equal(clf.classes_[proba.argmax(1)], clf.predict(x))
    assert np.mean(clf.predict(x) == np.array(["a", "b"])[y]) > 0.9
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict(x), clf.predict(x))
    # the ensemble, when the rule takes it: the fold models held in memory, pickled with the estimator
    clf.set_params(choice_rule="ensemble").fit(x, y_partial)
    assert clf.chosen_method_ == "ensemble" and clf.chosen_kind_ == "ensemble"
    members = clf.comparison_["ensemble"]["members"]
    assert len(clf.model_.members) == 3 * len(members)  # every member's three fold models
    proba = pickle.loads(pickle.dumps(clf)).predict_proba(x)
    assert np.allclose(proba.sum(1), 1, atol=1e-5) and np.mean(clf.classes_[proba.argmax(1)] == np.array(["a", "b"])[y]) > 0.9


def test_classical_models_load_only_known_types_and_name_a_corrupt_file(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    path = save_model(str(tmp_path), LogisticRegression().fit(x, y))
    assert np.allclose(load_model_file(path).predict_proba(x), LogisticRegression().fit(x, y).predict_proba(x))
    unsafe = make_pipeline(FunctionTransformer(os.getcwd), LogisticRegression())
    save_model(str(tmp_path / "bad"), unsafe)
    with pytest.raises(CheckpointError, match="holds types mentor does not load: .*getcwd"):
        load_model_file(str(tmp_path / "bad" / "model.skops"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable skops model file"):
        load_model_file(str(tmp_path / "c" / "model.skops"))


def test_baselines_fit_a_few_labels_and_every_class_has_a_column():
    assert gradient_boosting_leaf(12, 3) == 2 and gradient_boosting_leaf(40, 10) == 2
    assert gradient_boosting_leaf(800, 10) == 20 and gradient_boosting_leaf(4000, 10) == 20
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (3, 5))
    y = np.arange(12) % 3
    x = (centers[y] + rng.normal(0, 1, (12, 5))).astype(np.float32)
    for name in ("gradient_boosting", "random_forest", "extra_trees"):
        model, used = fit_baseline(name, 0, x, y, lambda: x[:0], 3)
        assert used == 0 and len(np.unique(model.predict(x))) == 3, name  # scikit-learn's leaf of 20 gave one class
    model, _ = fit_baseline("logistic_regression", 0, x[y < 2], y[y < 2], lambda: x[:0], 3)
    proba = probabilities(model, x, 4)  # a fold without class 2 (and a 4th class never seen)
    assert proba.shape == (12, 4) and np.all(proba[:, 2:] == 0) and np.allclose(proba.sum(1), 1)
    exported = onnx_model(model, np.zeros(5, np.float32), np.ones(5, np.float32), 4)
    got = onnxruntime.InferenceSession(exported.SerializeToString()).run(None, {"x": x})[0]
    assert np.abs(got - proba).max() < 1e-5


def test_autogluon_entry_names_its_extra_where_it_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "autogluon.tabular", None)  # import fails as where it is not installed
    with pytest.raises(ConfigError, match=r"pip install 'mentor\[autogluon\]'"):
        AutoGluonClassifier().fit(np.zeros((6, 2)), np.array([0, 1, 0, 1, -1, -1]))
    train, test, _, _ = moons_table(str(tmp_path))
    args = compare_args(train, test, str(tmp_path / "cmp"))
    args[args.index("--methods") + 1:args.index("--folds")] = ["supervised", "autogluon:time_limit=5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "mentor[autogluon]" in err and "Traceback" not in err
    assert main(compare_args(train, test, str(tmp_path / "c2"))[:-1] + ["--methods", "autogluon:budget=5"]) == 2
    assert "takes presets, time_limit, pseudolabel; got budget" in capsys.readouterr().err


def test_autogluon_entry_runs_beside_the_others_where_installed(tmp_path):
    pytest.importorskip("autogluon.tabular", reason="AutoGluon-Tabular is an optional extra: mentor[autogluon]")
    train, test, _, _ = moons_table(str(tmp_path))
    args = compare_args(train, test, str(tmp_path / "cmp"), "--fit-best")
    args[args.index("--methods") + 1:args.index("--folds")] = ["supervised", "logistic_regression",
                                                                "autogluon:time_limit=20:presets=medium_quality"]
    assert main(args) == 0
    result = json.load(open(tmp_path / "cmp" / "compare.json"))
    rows = {r["label"]: r for r in result["tables"]["all"]["rows"]}
    ag = rows["autogluon:time_limit=20:presets=medium_quality"]
    assert ag["kind"] == "reference" and ag["val"]["units"] == 18 and "difference_interval" in ag["val"]
    assert result["tables"]["all"]["chosen"] != ag["label"] and result["best"]["label"] != ag["label"]
    assert "autogluon" not in {m["entry"] for m in result["tables"]["all"]["ensemble"]["members"]}


def test_cells_without_probabilities_are_left_out_of_the_ensemble_and_named(tmp_path):
    from mentor.compare import format_tables

    config = TrainConfig(dataset="digits", num_labeled=30, steps=10, batch_size=16, unlabeled_batch_size=32,
                         model_options={"hidden": [8]}, device="cpu", progress=False)
    out = str(tmp_path / "cmp")
    compare(config, methods=["supervised", "logistic_regression"], folds=2, out=out, progress=False)
    for fold in (0, 1):  # as an older mentor left them: classes only
        path = os.path.join(out, "cells", "all", "logistic_regression", f"seed0-fold{fold}", "predictions.npz")
        kept = {k: v for k, v in np.load(path).items() if not k.endswith("_proba")}
        np.savez_compressed(path, **kept)
    result = compare(config, methods=["supervised", "logistic_regression"], folds=2, out=out, progress=False,
                     resume=True)
    ensemble = result["tables"]["all"]["ensemble"]
    assert ensemble["candidates"] == ["supervised"] and ensemble["left_out"] == ["logistic_regression"]
    assert "left out: logistic_regression, whose cells hold no probabilities" in format_tables(result)


def test_compare_on_a_table_states_the_test_rows_it_keeps_back(tmp_path, capsys):
    train, _, _, _ = moons_table(str(tmp_path), labeled_per_class=12, unlabeled=60)
    out = str(tmp_path / "cmp")
    args = ["compare", "--dataset", "table", "--data-path", train, "--target", "side", "--steps", "10",
            "--methods", "supervised", "logistic_regression", "--folds", "2", "--out", out, "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out  # above the table (and on stderr with the plan, when progress is on)
    assert "Test split: 5 of the 24 labeled examples are held out (a seeded stratified 20%" in printed
    assert "the folds and --fit-best use the other 19" in printed and "--test-path FILE" in printed
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["tables"]["all"]["rows"][0]["val"]["units"] == 19


def test_adding_fit_best_to_a_finished_comparison_just_fits_and_chance_level_is_flagged(tmp_path):
    from mentor.compare import format_tables

    config = TrainConfig(dataset="digits", num_labeled=30, steps=10, batch_size=16, unlabeled_batch_size=32,
                         model_options={"hidden": [8]}, device="cpu", progress=False, lr=1e-6)
    out = str(tmp_path / "cmp")
    first = compare(config, methods=["supervised", "logistic_regression"], folds=2, out=out, progress=False)
    stamps = {c["cell"]: os.stat(os.path.join(out, "cells", c["cell"], "cell.json")).st_mtime_ns
              for c in first["cells"]}
    again = compare(config, methods=["supervised", "logistic_regression"], folds=2, out=out, progress=False,
                    fit_best=True)  # no resume=True needed
    assert again["best"]["folder"] == os.path.abspath(os.path.join(out, "best"))
    assert all(os.stat(os.path.join(out, "cells", k, "cell.json")).st_mtime_ns == v for k, v in stamps.items())
    table = again["tables"]["all"]
    # a network at lr 1e-6 learns nothing in 10 steps: flagged, with the likely reason
    assert "supervised" in table["at_chance"] and "logistic_regression" not in table["at_chance"]
    assert table["chance"] == pytest.approx(0.1, abs=0.05)
    assert "supervised is at chance level on validation" in format_tables(again)
