"""Using a trained run: tables in, predictions and exports out, with clear errors for bad input."""
import csv
import json
import os

import numpy as np
import pytest
import torch

import mentor
from mentor.cli import main
from mentor.errors import DataError
from mentor.train import Trainer

from conftest import tiny_config
from test_image_training import image_config, tiny_images

SPECIES = ("setosa", "versicolor", "virginica")


def write_iris(path, labeled_share=0.4, seed=0, rows=None):
    """scikit-learn's iris as a CSV: string labels, empty target cells for unlabeled rows."""
    from sklearn.datasets import load_iris

    data = load_iris()
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for x, y in list(zip(data.data, data.target))[:rows]:
            writer.writerow([*x, SPECIES[y] if rng.random() < labeled_share else ""])
    return data


def train_table(tmp_path, *extra):
    write_iris(tmp_path / "iris.csv")
    out = tmp_path / "run"
    code = main(["train", "--dataset", "table", "--data-path", str(tmp_path / "iris.csv"), "--target", "species",
                 "--method", "fixmatch", "--strong-noise", "0.1", "--steps", "150", "--ema-decay", "0.99",
                 "--eval-every", "50", "--no-progress", "--out", str(out), *extra])
    assert code == 0
    return out


def test_table_trains_predicts_and_exports(tmp_path, capsys):
    from sklearn.datasets import load_iris

    out = train_table(tmp_path)
    split = json.loads((out / "split.json").read_text())
    rows = split["dataset_rows"]
    assert len(rows["train"]) + len(rows["test"]) + len(rows["unlabeled"]) == 150
    assert len(split["labeled"]) == len(rows["train"])  # every labeled training row is used
    assert not set(rows["test"]) & set(rows["train"])
    spec = json.loads((out / "inference.json").read_text())
    assert spec["class_names"] == list(SPECIES) and spec["feature_columns"][0] == "sepal_length"

    capsys.readouterr()
    assert main(["predict", str(out), "--data", str(tmp_path / "iris.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 150 and set(table[0]) == {"row", "prediction", *(f"p_{s}" for s in SPECIES)}
    model = mentor.load_model(str(out))
    x = load_iris().data
    assert [r["prediction"] for r in table] == model.predict(x).tolist()
    assert (model.predict(x) == np.array(SPECIES)[load_iris().target]).mean() > 0.8  # raw rows, scaled inside

    assert main(["export", str(out), "--out", str(tmp_path / "model.pt2")]) == 0
    exported, meta = mentor.load_export(str(tmp_path / "model.pt2"))
    probs = exported(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(probs, model.predict_proba(x), rtol=1e-5, atol=1e-6)
    assert meta["classes"] == list(SPECIES) and meta["model"] == "ema"


def test_onnx_export_equals_the_library(tmp_path):
    import onnxruntime

    out = train_table(tmp_path)
    mentor.export_model(str(out), str(tmp_path / "model.onnx"), model="student")
    x = write_iris(tmp_path / "again.csv").data.astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    np.testing.assert_allclose(session.run(None, {"x": x})[0], mentor.load_model(str(out), "student").predict_proba(x),
                               rtol=1e-5, atol=1e-6)


def test_image_run_predicts_raw_uint8_like_its_evaluation(tmp_path):
    data = tiny_images()
    trainer = Trainer(image_config("fixmatch", out=str(tmp_path / "run"), ema_decay=0.9), dataset=data)
    trainer.fit()
    model = mentor.load_model(str(tmp_path / "run"), model="student")
    with torch.no_grad():
        trainer.method.eval_model().eval()
        want = torch.softmax(trainer.method.eval_model()(trainer.views.eval(torch.as_tensor(data.x_test))), -1)
    np.testing.assert_allclose(model.predict_proba(data.x_test), want.numpy(), rtol=1e-5, atol=1e-6)
    assert model.predict(data.x_test).dtype.kind == "i"  # no class names: class indices


def test_predict_errors_name_the_problem(tmp_path):
    out = train_table(tmp_path)
    model = mentor.load_model(str(out))
    with pytest.raises(DataError, match=r"shape \(n, 4\) \(columns sepal_length.*got shape \(2, 3\)"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(DataError, match="NaN"):
        model.predict(np.full((1, 4), np.nan))
    with pytest.raises(mentor.ConfigError, match="no 'teacher' model; it has: ema, student"):
        mentor.load_model(str(out), model="teacher")
    with pytest.raises(mentor.CheckpointError, match="no checkpoint.pt"):
        mentor.load_model(str(tmp_path))
    bad = tmp_path / "bad.csv"
    bad.write_text("sepal_length,sepal_width,petal_length\n1,2,3\n")
    assert main(["predict", str(out), "--data", str(bad), "--out", str(tmp_path / "p.csv")]) == 2
    assert not (tmp_path / "p.csv").exists()  # nothing half-written
    with pytest.raises(mentor.ConfigError, match=r"\.pt2.*\.onnx"):
        mentor.export_model(str(out), str(tmp_path / "model.bin"))


@pytest.mark.parametrize("content, message", [
    ("a,b,label\n1,x,cat\n2,3,dog\n", r"line 2: column 'b' holds 'x', not a number"),
    ("a,b,label\n1,,cat\n2,3,dog\n", r"line 2: column 'b' is empty"),
    ("a,b,label\n1,2,\n2,3,\n", "no row has a label in column 'label'"),
    ("a,b,label\n1,2,cat\n2,3,dog\n4,5,dog\n", r"class\(es\) 'cat' have a single labeled row"),
    ("a,b,label\n1,2,cat\n2,3,cat\n", "one class only"),
    ("a,b,kind\n1,2,cat\n", "no column 'label'; its columns: a, b, kind"),
    ("a,b,label\n1,2\n", "line 2: 2 cells, but the header has 3 columns"),
])
def test_bad_tables_get_clear_errors_and_leave_no_run(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        Trainer(tiny_config("supervised", out=str(tmp_path / "run"), dataset="table", data_path=str(path),
                            dataset_options={"target": "label"}, num_labeled=0))
    assert not os.path.exists(tmp_path / "run")


def test_table_test_path_and_marker(tmp_path):
    write_iris(tmp_path / "train.csv")
    text = (tmp_path / "train.csv").read_text().replace(",\n", ",?\n")  # "?" marks the unlabeled rows
    assert text.count(",?\n") > 50
    (tmp_path / "marked.csv").write_text(text)
    write_iris(tmp_path / "test.csv", labeled_share=1.0, seed=1)
    config = tiny_config("supervised", dataset="table", data_path=str(tmp_path / "marked.csv"), num_labeled=0,
                         dataset_options={"target": "species", "test_path": str(tmp_path / "test.csv"),
                                          "unlabeled_marker": "?"})
    trainer = Trainer(config)
    assert len(trainer.dataset.x_test) == 150 and trainer.split.dataset_rows["test"] == []
    assert len(trainer.dataset.x_unlabeled) == text.count(",?\n")
    assert len(trainer.split.labeled) == len(trainer.dataset.x_train) == len(trainer.split.dataset_rows["train"])
    (tmp_path / "odd.csv").write_text((tmp_path / "test.csv").read_text().replace("setosa", "rose"))
    config.dataset_options["test_path"] = str(tmp_path / "odd.csv")
    with pytest.raises(DataError, match=r"labels \['rose'\] are not among"):
        Trainer(config)


def test_parquet_table_reads_like_its_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_iris(tmp_path / "iris.csv")
    with open(tmp_path / "iris.csv") as f:
        rows = list(csv.reader(f))
    columns = {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    table = {k: pa.array([float(v) for v in vals]) for k, vals in columns.items() if k != "species"}
    table["species"] = pa.array([v or None for v in columns["species"]])  # nulls: unlabeled rows
    pq.write_table(pa.table(table), tmp_path / "iris.parquet")
    datasets = [Trainer(tiny_config("supervised", dataset="table", data_path=str(tmp_path / name), num_labeled=0,
                                    dataset_options={"target": "species"})).dataset
                for name in ("iris.csv", "iris.parquet")]
    np.testing.assert_array_equal(datasets[0].x_train, datasets[1].x_train)
    np.testing.assert_array_equal(datasets[0].y_train, datasets[1].y_train)
    assert len(datasets[1].x_unlabeled) == len(datasets[0].x_unlabeled) > 50
