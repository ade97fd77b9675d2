"""mentor report: the page and its figures for several runs, and nothing written for a bad run."""
import os

import pytest

from mentor.cli import main
from mentor.errors import ConfigError, DataError
from mentor.report import write_report
from mentor.train import Trainer

from conftest import tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


def two_runs(tmp_path):
    runs = []
    for method, options in (("fixmatch", {"ema_decay": 0.9}), ("meta_pseudo_labels", {})):
        out = str(tmp_path / method)
        Trainer(tiny_config(method, out=out, dataset="two_moons", num_labeled=6, steps=6, eval_every=2,
                            **options)).fit()
        runs.append(out)
    return runs


def test_report_of_two_runs(tmp_path):
    runs = two_runs(tmp_path)
    out = tmp_path / "report" / "report.html"
    assert main(["report", *runs, "--out", str(out)]) == 0
    folder = out.parent
    for name in ("accuracy.png", "losses.png", "masks.png", "lr.png", "confusion-0.png", "confusion-1.png"):
        assert (folder / name).read_bytes().startswith(PNG), name
        assert f'src="{name}"' in out.read_text()
    page = out.read_text()
    assert "fixmatch" in page and "meta_pseudo_labels" in page and "teacher_test_accuracy" in page


def test_bad_input_writes_nothing(tmp_path):
    runs = two_runs(tmp_path)
    with pytest.raises(DataError, match="no metrics.jsonl"):
        write_report([runs[0], str(tmp_path)], str(tmp_path / "r" / "report.html"))
    assert not os.path.exists(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"ending in \.html"):
        write_report(runs, str(tmp_path / "report.png"))
