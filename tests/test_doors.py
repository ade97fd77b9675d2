"""Bad input at every door: each case runs one `mentor` command (or the estimator) on a wrong
flag, file, folder, checkpoint or output path, and asserts that it stops with exit code 2, one
`mentor: error:` line that names the problem, and no traceback. Then the changed-input cases:
a run, a comparison or a shard set refuses an input that changed under it, and a non-finite loss
stops a run with the step and the term.

The files are made once per module (``world``): good ones, bad ones, and a tiny finished run to
evaluate, predict from, export and report. Training cases stay tiny (digits, a few steps)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mentor.cli import main

DIGITS = ["--dataset", "digits", "--num-labeled", "50", "--steps", "3", "--eval-every", "3", "--no-progress"]
FIX = ["--method", "fixmatch", "--strong-noise", "0.1"]


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return path


def table(rows=40, labeled=24, classes="abc", extra=""):
    rng = np.random.default_rng(0)
    lines = ["f0,f1,y"]
    for i in range(rows):
        c = classes[i % len(classes)]
        lines.append(f"{rng.normal() + i % len(classes):.3f},{rng.normal():.3f},{c if i < labeled else ''}")
    return "\n".join(lines) + "\n" + extra


def images(folder, count=3, size=8, value=50):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((size, size, 3), value + 20 * i, np.uint8)).save(os.path.join(folder, f"{i}.png"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The files every case reads, and a finished tiny run (with its EMA) on a table."""
    root = tmp_path_factory.mktemp("doors")
    os.environ["MENTOR_CACHE"] = str(root / "cache")
    w = {"tmp": str(root)}
    w["csv"] = write(str(root / "good.csv"), table())
    w["new"] = write(str(root / "new.csv"), "f0,f1\n0.1,0.2\n1.5,-0.3\n")
    w["latin"] = write(str(root / "latin.csv"), "f0,f1,y\n1,2,caf\xe9\n2,3,b\n".encode("latin-1"), "wb")
    w["garbage"] = write(str(root / "garbage.csv"), bytes(range(128, 256)) * 4, "wb")
    w["dup"] = write(str(root / "dup.csv"), "f0,f0,y\n1,2,a\n2,3,b\n")
    w["duptarget"] = write(str(root / "duptarget.csv"), "f0,y,y\n1,a,a\n2,b,b\n")
    w["empty"] = write(str(root / "empty.csv"), "")
    w["header"] = write(str(root / "header.csv"), "f0,f1,y\n")
    w["text_cell"] = write(str(root / "textcell.csv"), "f0,f1,y\n1,2,a\n1,two,b\n3,4,a\n5,6,b\n")
    w["empty_cell"] = write(str(root / "emptycell.csv"), "f0,f1,y\n1,2,a\n1,,b\n3,4,a\n5,6,b\n")
    w["ragged"] = write(str(root / "ragged.csv"), "f0,f1,y\n1,2,a\n1,2,3,b\n")
    w["oneclass"] = write(str(root / "oneclass.csv"), "f0,f1,y\n1,2,a\n2,3,a\n3,4,\n")
    w["lonely"] = write(str(root / "lonely.csv"), "f0,f1,y\n1,2,a\n2,3,a\n3,4,b\n")
    w["nolabel"] = write(str(root / "nolabel.csv"), "f0,f1,y\n1,2,\n2,3,\n")
    w["infcell"] = write(str(root / "infcell.csv"), "f0,f1,y\n1,inf,a\n2,3,b\n")
    w["test_unknown"] = write(str(root / "test_unknown.csv"), "f0,f1,y\n1,2,zebra\n")
    w["test_columns"] = write(str(root / "test_columns.csv"), "g0,g1,y\n1,2,a\n")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), np.arange(30) % 3
    np.savez(root / "good.npz", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    np.savez(root / "lacks.npz", x_train=x, y_train=y)
    np.savez(root / "lengths.npz", x_train=x, y_train=y[:10], x_test=x[:6], y_test=y[:6])
    np.savez(root / "range.npz", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6] - 5)
    nan = x.copy()
    nan[3, 1] = np.nan
    np.savez(root / "nan.npz", x_train=nan, y_train=y, x_test=x[:6], y_test=y[:6])
    np.savez(root / "shapes.npz", x_train=x, y_train=y, x_test=x[:6, :3], y_test=y[:6])
    write(str(root / "notnpz.npz"), "not a zip")
    write(str(root / "random.npz"), bytes(np.random.default_rng(1).integers(0, 256, 500, np.uint8)), "wb")
    write(str(root / "random.npy"), bytes(np.random.default_rng(2).integers(0, 256, 500, np.uint8)), "wb")
    np.savez(root / "gapped.npz", x_train=x, y_train=y * 100, x_test=x[:6], y_test=y[:6] * 100)  # labels 0, 100, 200
    np.save(root / "rows.npy", x[:5, :2])
    np.save(root / "wide.npy", x[:5])
    np.save(root / "nanrows.npy", np.array([[np.nan, 1.0]], np.float32))
    np.savez(root / "nox.npz", other=x)
    # image folders
    for cls in ("cat", "dog"):
        images(str(root / "photos" / "train" / cls))
        images(str(root / "photos" / "test" / cls))
        images(str(root / "mixed" / cls))
    images(str(root / "mixed" / "cat"), count=1, size=10)  # 0.png replaced by a 10x10 image
    images(str(root / "oneclass_photos" / "cat"))
    images(str(root / "noclass_photos"))
    images(str(root / "emptyclass" / "cat"))
    os.makedirs(root / "emptyclass" / "dog")
    images(str(root / "broken" / "cat"))
    images(str(root / "broken" / "dog"))
    write(str(root / "broken" / "dog" / "bad.png"), "not a png")
    images(str(root / "testclasses" / "train" / "cat"))
    images(str(root / "testclasses" / "train" / "dog"))
    images(str(root / "testclasses" / "test" / "cow"))
    images(str(root / "testclasses" / "test" / "dog"))
    images(str(root / "single" / "cat"))
    images(str(root / "single" / "dog"), count=1)
    images(str(root / "zero" / "cat"))
    images(str(root / "zero" / "dog"))
    write(str(root / "zero" / "dog" / "empty.png"), "")
    images(str(root / "trunc" / "cat"))
    images(str(root / "trunc" / "dog"))
    with open(root / "trunc" / "cat" / "0.png", "rb") as f:
        head = f.read(40)
    write(str(root / "trunc" / "dog" / "cut.png"), head, "wb")
    os.makedirs(root / "empty_folder")
    write(str(root / "list_nopath.csv"), "file,label\na.png,1\n")
    write(str(root / "list_badlabel.csv"), "path,label\nphotos/train/cat/0.png,cat\n")
    write(str(root / "afile"), "x")
    write(str(root / "notes.txt"), "x")
    # a tiny finished run with an EMA (a table: predict by column name), and a second one
    w["run"] = str(root / "run")
    assert main(["train", "--dataset", "table", "--data-path", w["csv"], "--target", "y", "--steps", "4",
                 "--eval-every", "2", "--ema-decay", "0.9", "--out", w["run"], "--no-progress"]) == 0
    assert main(["train", "--dataset", "table", "--data-path", w["csv"], "--target", "y", "--steps", "4",
                 "--eval-every", "2", "--seed", "1", "--out", str(root / "other_run"), "--no-progress"]) == 0
    shutil.copytree(w["run"], root / "foreign_run")
    shutil.copy(root / "other_run" / "checkpoint.pt", root / "foreign_run" / "checkpoint.pt")
    shutil.copytree(w["run"], root / "corrupt_run")
    write(str(root / "corrupt_run" / "checkpoint.pt"), "garbage")
    shutil.copytree(w["run"], root / "torn_spec")
    write(str(root / "torn_spec" / "inference.json"), "{")
    shutil.copytree(w["run"], root / "torn_middle")
    with open(root / "torn_middle" / "metrics.jsonl") as f:
        lines = f.readlines()
    write(str(root / "torn_middle" / "metrics.jsonl"), '{"step": 2, "te\n' + "".join(lines[1:]))
    os.makedirs(root / "not_a_run")
    shutil.copytree(w["run"], root / "no_inputs_run")
    os.remove(root / "no_inputs_run" / "inputs.json")
    write(str(root / "delivered" / "model.skops"), "")  # what --fit-best leaves for a classical choice
    w["digits_run"] = str(root / "digits_run")
    assert main(["train", *DIGITS, "--out", w["digits_run"]]) == 0
    yield w
    os.environ.pop("MENTOR_CACHE", None)


T = "{tmp}"
RUN = "{tmp}/run"
TABLE = ["--dataset", "table", "--target", "y", "--steps", "3", "--no-progress"]

# (name, command, what the message must say)
CASES = [
    # --- train: flags -----------------------------------------------------------------------
    ("device-cuda", ["train", *DIGITS, "--device", "cuda", "--out", f"{T}/o1"], "no CUDA device"),
    ("device-cuda-index", ["train", *DIGITS, "--device", "cuda:7", "--out", f"{T}/o1"], "no CUDA device"),
    ("device-tpu", ["train", *DIGITS, "--device", "tpu", "--out", f"{T}/o1"], "'tpu': not a device name"),
    ("device-meta", ["train", *DIGITS, "--device", "meta", "--out", f"{T}/o1"], "mentor trains on cpu, cuda or mps"),
    ("lr-nan", ["train", *DIGITS, "--lr", "nan", "--out", f"{T}/o1"], "lr must be a positive finite number, got nan"),
    ("lr-inf", ["train", *DIGITS, "--lr", "inf", "--out", f"{T}/o1"], "lr must be a positive finite number, got inf"),
    ("lr-zero", ["train", *DIGITS, "--lr", "0", "--out", f"{T}/o1"], "lr must be a positive"),
    ("lr-negative", ["train", *DIGITS, "--lr", "-1", "--out", f"{T}/o1"], "lr must be a positive"),
    ("momentum-5", ["train", *DIGITS, "--momentum", "5", "--out", f"{T}/o1"], "momentum must be in [0, 1), got 5"),
    ("momentum-negative", ["train", *DIGITS, "--momentum", "-0.1", "--out", f"{T}/o1"], "momentum must be in [0, 1)"),
    ("momentum-one", ["train", *DIGITS, "--momentum", "1", "--out", f"{T}/o1"], "momentum must be in [0, 1)"),
    ("momentum-nan", ["train", *DIGITS, "--momentum", "nan", "--out", f"{T}/o1"], "momentum must be in [0, 1)"),
    ("weight-decay-negative", ["train", *DIGITS, "--weight-decay", "-1", "--out", f"{T}/o1"], "weight_decay must be"),
    ("weight-decay-nan", ["train", *DIGITS, "--weight-decay", "nan", "--out", f"{T}/o1"], "weight_decay must be"),
    ("steps-zero", ["train", *DIGITS, "--steps", "0", "--out", f"{T}/o1"], "steps must be positive, got 0"),
    ("steps-negative", ["train", *DIGITS, "--steps", "-5", "--out", f"{T}/o1"], "steps must be positive"),
    ("batch-zero", ["train", *DIGITS, "--batch-size", "0", "--out", f"{T}/o1"], "batch_size must be positive"),
    ("unlabeled-batch-zero", ["train", *DIGITS, "--unlabeled-batch-size", "0", "--out", f"{T}/o1"],
     "unlabeled_batch_size must be positive"),
    ("num-labeled-negative", ["train", *DIGITS, "--num-labeled", "-1", "--out", f"{T}/o1"], "num_labeled must be >= 0"),
    ("num-labeled-few", ["train", *DIGITS, "--num-labeled", "5", "--out", f"{T}/o1"],
     "--num-labeled 5 leaves some of the 10 classes"),
    ("num-labeled-many", ["train", *DIGITS, "--num-labeled", "100000", "--out", f"{T}/o1"],
     "--num-labeled 100000 exceeds the"),
    ("validation-size-many", ["train", *DIGITS, "--validation-size", "5000", "--out", f"{T}/o1"],
     "--validation-size 5000 exceeds the"),
    ("validation-size-negative", ["train", *DIGITS, "--validation-size", "-1", "--out", f"{T}/o1"],
     "validation size must be >= 0"),
    ("label-noise", ["train", *DIGITS, "--label-noise", "2", "--out", f"{T}/o1"], "label_noise must be a fraction"),
    ("ema-decay-big", ["train", *DIGITS, "--ema-decay", "1.5", "--out", f"{T}/o1"], "ema_decay must be in (0, 1)"),
    ("ema-decay-zero", ["train", *DIGITS, "--ema-decay", "0", "--out", f"{T}/o1"], "ema_decay must be in (0, 1)"),
    ("layer-decay", ["train", *DIGITS, "--layer-decay", "0", "--out", f"{T}/o1"], "layer_decay must be in (0, 1]"),
    ("backbone-scale", ["train", *DIGITS, "--backbone-lr-scale", "-1", "--out", f"{T}/o1"], "backbone_lr_scale"),
    ("warmup-negative", ["train", *DIGITS, "--warmup-steps", "-1", "--out", f"{T}/o1"], "warmup_steps and eval_every"),
    ("eval-every-negative", ["train", *DIGITS, "--eval-every", "-1", "--out", f"{T}/o1"], "warmup_steps and eval_every"),
    ("median-of", ["train", *DIGITS, "--median-of", "0", "--out", f"{T}/o1"], "median_of must be >= 1"),
    ("strong-noise-negative", ["train", *DIGITS, "--strong-noise", "-1", "--out", f"{T}/o1"], "strong_noise must be"),
    ("input-noise-nan", ["train", *DIGITS, "--input-noise", "nan", "--out", f"{T}/o1"], "input_noise must be"),
    ("method-unknown", ["train", *DIGITS, "--method", "nosuch", "--out", f"{T}/o1"], "nosuch"),
    ("model-unknown", ["train", *DIGITS, "--model", "nosuch", "--out", f"{T}/o1"], "nosuch"),
    ("dataset-unknown", ["train", *DIGITS, "--dataset", "nosuch", "--out", f"{T}/o1"], "nosuch"),
    ("preset-unknown", ["train", *DIGITS, "--preset", "nosuch", "--out", f"{T}/o1"], "nosuch"),
    ("hp-text-for-number", ["train", *DIGITS, *FIX, "--hp", "threshold=abc", "--out", f"{T}/o1"],
     "threshold='abc': takes a number"),
    ("hp-nan", ["train", *DIGITS, *FIX, "--hp", "unlabeled_weight=nan", "--out", f"{T}/o1"],
     "unlabeled_weight=nan: takes a finite number"),
    ("hp-bool-for-number", ["train", *DIGITS, *FIX, "--hp", "threshold=true", "--out", f"{T}/o1"],
     "threshold=True: takes a number"),
    ("hp-unknown", ["train", *DIGITS, *FIX, "--hp", "nosuch=1", "--out", f"{T}/o1"], "no hyper-parameter 'nosuch'"),
    ("hp-no-equals", ["train", *DIGITS, *FIX, "--hp", "threshold", "--out", f"{T}/o1"], "expects KEY=VALUE"),
    ("hp-list-for-number", ["train", *DIGITS, *FIX, "--hp", "threshold=0.5,0.9", "--out", f"{T}/o1"],
     "threshold=[0.5, 0.9]: takes a number"),
    ("model-hp-text", ["train", *DIGITS, "--model-hp", "hidden=abc", "--out", f"{T}/o1"],
     "hidden='abc': takes numbers separated by commas"),
    ("model-hp-dropout", ["train", *DIGITS, "--model-hp", "dropout=abc", "--out", f"{T}/o1"],
     "dropout='abc': takes a number"),
    ("model-hp-unknown", ["train", *DIGITS, "--model-hp", "nosuch=1", "--out", f"{T}/o1"], "nosuch"),
    ("model-hp-pretrained-number", ["train", *DIGITS, "--model-hp", "pretrained=3", "--out", f"{T}/o1"],
     "pretrained must be a path"),
    ("data-hp-text", ["train", "--dataset", "two_moons", "--steps", "3", "--data-hp", "noise=abc", "--out", f"{T}/o1"],
     "noise='abc': takes a number"),
    ("data-hp-unknown", ["train", *DIGITS, "--data-hp", "nosuch=1", "--out", f"{T}/o1"], "has no option 'nosuch'"),
    ("out-is-file", ["train", *DIGITS, "--out", f"{T}/afile"], "afile is a file; give a folder"),
    ("out-under-file", ["train", *DIGITS, "--out", f"{T}/afile/sub"], "afile is a file, so nothing can be written"),
    ("out-name-too-long", ["train", *DIGITS, "--out", f"{T}/{'x' * 300}"], "over the filesystem's limit"),
    ("resume-without-out", ["train", *DIGITS, "--resume"], "--resume needs --out"),
    ("resume-empty-folder", ["train", *DIGITS, "--resume", "--out", f"{T}/empty_folder"], "nothing to resume"),
    ("run-exists", ["train", *DIGITS, "--out", f"{T}/digits_run"], "already holds a run; pass --resume"),
    ("resume-other-settings", ["train", *DIGITS, "--lr", "0.5", "--resume", "--out", f"{T}/digits_run"],
     "belongs to a different run (lr"),
    ("split-mpl-digits", ["train", *DIGITS, "--split", "mpl", "--out", f"{T}/o1"], "mpl"),
    # --- train: tables ------------------------------------------------------------------------
    ("table-no-path", ["train", *TABLE, "--out", f"{T}/o1"], "needs --data-path"),
    ("table-missing", ["train", *TABLE, "--data-path", f"{T}/nothere.csv", "--out", f"{T}/o1"],
     "table file not found"),
    ("table-no-target", ["train", "--dataset", "table", "--data-path", f"{T}/good.csv", "--steps", "3",
                         "--out", f"{T}/o1"], "needs --target COLUMN"),
    ("table-target-absent", ["train", "--dataset", "table", "--data-path", f"{T}/good.csv", "--target", "zz",
                             "--steps", "3", "--out", f"{T}/o1"], "has no column 'zz'"),
    ("table-latin1", ["train", *TABLE, "--data-path", f"{T}/latin.csv", "--out", f"{T}/o1"], "is not UTF-8 text"),
    ("table-binary", ["train", *TABLE, "--data-path", f"{T}/garbage.csv", "--out", f"{T}/o1"], "is not UTF-8 text"),
    ("table-dup-header", ["train", *TABLE, "--data-path", f"{T}/dup.csv", "--out", f"{T}/o1"],
     "header names 'f0' more than once"),
    ("table-dup-target", ["train", *TABLE, "--data-path", f"{T}/duptarget.csv", "--out", f"{T}/o1"],
     "header names 'y' more than once"),
    ("table-empty", ["train", *TABLE, "--data-path", f"{T}/empty.csv", "--out", f"{T}/o1"], "is empty"),
    ("table-header-only", ["train", *TABLE, "--data-path", f"{T}/header.csv", "--out", f"{T}/o1"],
     "no row has a label"),
    ("table-text-cell", ["train", *TABLE, "--data-path", f"{T}/textcell.csv", "--out", f"{T}/o1"],
     "line 3: column 'f1' holds 'two'"),
    ("table-empty-cell", ["train", *TABLE, "--data-path", f"{T}/emptycell.csv", "--out", f"{T}/o1"],
     "line 3: column 'f1' is empty"),
    ("table-ragged", ["train", *TABLE, "--data-path", f"{T}/ragged.csv", "--out", f"{T}/o1"], "line 3: 4 cells"),
    ("table-one-class", ["train", *TABLE, "--data-path", f"{T}/oneclass.csv", "--out", f"{T}/o1"], "one class only"),
    ("table-lonely-class", ["train", *TABLE, "--data-path", f"{T}/lonely.csv", "--out", f"{T}/o1"],
     "'b' have a single labeled row"),
    ("table-no-label", ["train", *TABLE, "--data-path", f"{T}/nolabel.csv", "--out", f"{T}/o1"], "no row has a label"),
    ("table-inf-cell", ["train", *TABLE, "--data-path", f"{T}/infcell.csv", "--out", f"{T}/o1"], "is not finite"),
    ("table-test-unknown-label", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--test-path",
                                  f"{T}/test_unknown.csv", "--out", f"{T}/o1"], "labels ['zebra'] are not among"),
    ("table-test-columns", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--test-path", f"{T}/test_columns.csv",
                            "--out", f"{T}/o1"], "has columns g0, g1, y"),
    ("table-test-missing", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--test-path", f"{T}/nothere.csv",
                            "--out", f"{T}/o1"], "table file not found"),
    ("table-test-fraction-big", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--data-hp", "test_fraction=1.5",
                                 "--out", f"{T}/o1"], "test_fraction must be in (0, 1)"),
    ("table-test-fraction-text", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--data-hp", "test_fraction=abc",
                                  "--out", f"{T}/o1"], "test_fraction='abc': takes a number"),
    ("table-num-labeled-many", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--num-labeled", "500",
                                "--out", f"{T}/o1"], "--num-labeled 500 exceeds"),
    # --- train: npz ----------------------------------------------------------------------------
    ("npz-missing", ["train", "--dataset", "npz", "--data-path", f"{T}/nothere.npz", "--out", f"{T}/o1"],
     "data file not found"),
    ("npz-no-path", ["train", "--dataset", "npz", "--out", f"{T}/o1"], "needs --data-path"),
    ("npz-lacks", ["train", "--dataset", "npz", "--data-path", f"{T}/lacks.npz", "--out", f"{T}/o1"],
     "lacks the array(s) x_test, y_test"),
    ("npz-lengths", ["train", "--dataset", "npz", "--data-path", f"{T}/lengths.npz", "--out", f"{T}/o1"],
     "y_train has 10 labels but the features have 30 rows"),
    ("npz-label-range", ["train", "--dataset", "npz", "--data-path", f"{T}/range.npz", "--out", f"{T}/o1"],
     "y_test has labels in [-5"),
    ("npz-nan", ["train", "--dataset", "npz", "--data-path", f"{T}/nan.npz", "--out", f"{T}/o1"],
     "x_train has NaN or infinite values in 1 row(s), first at index 3"),
    ("npz-shapes", ["train", "--dataset", "npz", "--data-path", f"{T}/shapes.npz", "--out", f"{T}/o1"],
     "x_test rows have shape (3,) but x_train rows have (4,)"),
    ("npz-not-zip", ["train", "--dataset", "npz", "--data-path", f"{T}/notnpz.npz", "--out", f"{T}/o1"],
     "is not a .npz archive"),
    ("npz-random-bytes", ["train", "--dataset", "npz", "--data-path", f"{T}/random.npz", "--out", f"{T}/o1"],
     "is not a .npz archive"),
    ("npz-gapped-labels", ["train", "--dataset", "npz", "--data-path", f"{T}/gapped.npz", "--out", f"{T}/o1"],
     "the labels are 0, 100, 200 \\(3 distinct values\\), but classes are numbered 0..C-1"),
    ("table-folder", ["train", *TABLE, "--data-path", f"{T}/photos", "--out", f"{T}/o1"],
     "photos is a folder: a table is one"),
    ("method-negative-weight", ["train", *DIGITS, *FIX, "--hp", "unlabeled_weight=-1", "--out", f"{T}/o1"],
     "unlabeled_weight=-1: takes a number >= 0"),
    ("method-fraction-for-int", ["train", *DIGITS, "--method", "simmatch", "--hp", "proj_dim=2.5", "--out", f"{T}/o1"],
     "proj_dim=2.5: takes an integer >= 1"),
    ("method-zero-temperature", ["train", *DIGITS, "--method", "sequencematch", "--hp", "target_temperature=0",
                                 "--out", f"{T}/o1"], "target_temperature=0: takes a number > 0"),
    ("resume-no-inputs", ["train", *TABLE, "--data-path", f"{T}/good.csv", "--steps", "6", "--resume", "--out",
                          f"{T}/no_inputs_run"], "has no inputs.json.*--no-input-check"),
    # --- train: image folders ------------------------------------------------------------------
    ("folder-missing", ["train", "--dataset", "image_folder", "--data-path", f"{T}/nothere", "--out", f"{T}/o1"],
     "image folder not found"),
    ("folder-no-path", ["train", "--dataset", "image_folder", "--out", f"{T}/o1"], "needs --data-path"),
    ("folder-no-classes", ["train", "--dataset", "image_folder", "--data-path", f"{T}/noclass_photos",
                           "--out", f"{T}/o1"], "has no class folders, so no image has a label"),
    ("folder-one-class", ["train", "--dataset", "image_folder", "--data-path", f"{T}/oneclass_photos",
                          "--out", f"{T}/o1"], "one class folder (cat)"),
    ("folder-empty-class", ["train", "--dataset", "image_folder", "--data-path", f"{T}/emptyclass",
                            "--out", f"{T}/o1"], "emptyclass/dog holds no image file"),
    ("folder-broken-image", ["train", "--dataset", "image_folder", "--data-path", f"{T}/broken", "--out", f"{T}/o1"],
     "cannot read image file .*bad.png"),
    ("folder-sizes-differ", ["train", "--dataset", "image_folder", "--data-path", f"{T}/mixed", "--out", f"{T}/o1"],
     "images differ in size"),
    ("folder-size-text", ["train", "--dataset", "image_folder", "--data-path", f"{T}/photos", "--data-hp",
                          "size=abc", "--out", f"{T}/o1"], "size='abc': give the images' height and width"),
    ("folder-unlabeled-missing", ["train", "--dataset", "image_folder", "--data-path", f"{T}/photos",
                                  "--unlabeled-path", f"{T}/nothere", "--out", f"{T}/o1"],
     "--unlabeled-path .*nothere: no such folder"),
    ("folder-unlabeled-file", ["train", "--dataset", "image_folder", "--data-path", f"{T}/photos",
                               "--unlabeled-path", f"{T}/afile", "--out", f"{T}/o1"], "a file, not a folder"),
    ("folder-single-image-class", ["train", "--dataset", "image_folder", "--data-path", f"{T}/single",
                                   "--out", f"{T}/o1"], "class\\(es\\) dog/ have a single example"),
    ("folder-test-classes", ["train", "--dataset", "image_folder", "--data-path", f"{T}/testclasses",
                             "--out", f"{T}/o1"], "test/ has classes \\['cow', 'dog'\\] but train/ has"),
    ("folder-zero-byte", ["train", "--dataset", "image_folder", "--data-path", f"{T}/zero", "--out", f"{T}/o1"],
     "empty.png is empty \\(0 bytes\\)"),
    # --- train: shards -------------------------------------------------------------------------
    ("shards-no-test", ["train", "--dataset", "shards", "--data-path", f"{T}/nothere.json", "--out", f"{T}/o1"],
     "needs --test-path"),
    ("shards-missing", ["train", "--dataset", "shards", "--data-path", f"{T}/nothere.json", "--test-path",
                        f"{T}/nothere.json", "--out", f"{T}/o1"], "not found"),
    # --- eval ------------------------------------------------------------------------------------
    ("eval-missing", ["eval", f"{T}/nothere"], "checkpoint not found"),
    ("eval-not-a-run", ["eval", f"{T}/not_a_run"], "checkpoint not found"),
    ("eval-corrupt", ["eval", f"{T}/corrupt_run"], "is corrupt or not a mentor checkpoint"),
    ("eval-cuda", ["eval", RUN, "--device", "cuda"], "no CUDA device"),
    ("eval-no-inputs", ["eval", f"{T}/no_inputs_run"], "has no inputs.json.*--no-input-check"),
    ("eval-delivered", ["eval", f"{T}/delivered"], "holds a classical model that mentor compare --fit-best delivered"),
    ("eval-foreign-checkpoint", ["eval", f"{T}/foreign_run"], "written by another run"),
    # --- predict ---------------------------------------------------------------------------------
    ("predict-missing-run", ["predict", f"{T}/nothere", "--data", f"{T}/new.csv", "--out", f"{T}/p.csv"],
     "no run folder"),
    ("predict-not-a-run", ["predict", f"{T}/not_a_run", "--data", f"{T}/new.csv", "--out", f"{T}/p.csv"],
     "holds no checkpoint.pt"),
    ("predict-missing-data", ["predict", RUN, "--data", f"{T}/nothere.csv", "--out", f"{T}/p.csv"],
     "input file not found"),
    ("predict-wrong-columns", ["predict", RUN, "--data", f"{T}/test_columns.csv", "--out", f"{T}/p.csv"],
     "lacks the model's feature column"),
    ("predict-npy-shape", ["predict", RUN, "--data", f"{T}/wide.npy", "--out", f"{T}/p.csv"],
     "takes inputs of shape \\(n, 2\\)"),
    ("predict-npy-nan", ["predict", RUN, "--data", f"{T}/nanrows.npy", "--out", f"{T}/p.csv"], "NaN or infinite"),
    ("predict-npz-no-x", ["predict", RUN, "--data", f"{T}/nox.npz", "--out", f"{T}/p.csv"], "reads its 'x'"),
    ("predict-npz-random", ["predict", RUN, "--data", f"{T}/random.npz", "--out", f"{T}/p.csv"],
     "is not a .npz archive"),
    ("predict-npy-random", ["predict", RUN, "--data", f"{T}/random.npy", "--out", f"{T}/p.csv"],
     "is not a .npy array"),
    ("predict-notes", ["predict", RUN, "--data", f"{T}/notes.txt", "--out", f"{T}/p.csv"],
     "notes.txt is a .txt file: the model of this run \\(table\\) predicts rows of a .csv"),
    ("predict-folder-for-table", ["predict", RUN, "--data", f"{T}/photos", "--out", f"{T}/p.csv"],
     "photos is a folder: the model of this run"),
    ("predict-out-folder", ["predict", RUN, "--data", f"{T}/new.csv", "--out", f"{T}/not_a_run"],
     "is a folder; give a file name"),
    ("predict-out-under-file", ["predict", RUN, "--data", f"{T}/new.csv", "--out", f"{T}/afile/p.csv"],
     "afile is a file"),
    ("predict-teacher", ["predict", RUN, "--data", f"{T}/new.csv", "--out", f"{T}/p.csv", "--model", "teacher"],
     "teacher"),
    ("predict-ema-none", ["predict", f"{T}/other_run", "--data", f"{T}/new.csv", "--out", f"{T}/p.csv", "--model",
                          "ema"], "ema"),
    ("predict-torn-spec", ["predict", f"{T}/torn_spec", "--data", f"{T}/new.csv", "--out", f"{T}/p.csv"],
     "inference.json is damaged"),
    ("predict-cuda", ["predict", RUN, "--data", f"{T}/new.csv", "--out", f"{T}/p.csv", "--device", "cuda"],
     "no CUDA device"),
    ("predict-latin1", ["predict", RUN, "--data", f"{T}/latin.csv", "--out", f"{T}/p.csv"], "is not UTF-8 text"),
    ("predict-foreign-checkpoint", ["predict", f"{T}/foreign_run", "--data", f"{T}/new.csv", "--out", f"{T}/p.csv"],
     "written by another run"),
    ("predict-dup-columns", ["predict", RUN, "--data", f"{T}/dup.csv", "--out", f"{T}/p.csv"],
     "header names 'f0' more than once"),
    # --- export ----------------------------------------------------------------------------------
    ("export-suffix", ["export", RUN, "--out", f"{T}/model.txt"], ".pt2"),
    ("export-out-folder", ["export", RUN, "--out", f"{T}/not_a_run"], "is a folder"),
    ("export-missing-run", ["export", f"{T}/nothere", "--out", f"{T}/m.pt2"], "no run folder"),
    ("export-corrupt", ["export", f"{T}/corrupt_run", "--out", f"{T}/m.pt2"], "corrupt"),
    ("export-teacher", ["export", RUN, "--out", f"{T}/m.pt2", "--model", "teacher"], "teacher"),
    # --- report ----------------------------------------------------------------------------------
    ("report-missing-run", ["report", f"{T}/nothere", "--out", f"{T}/r/r.html"], "nothere"),
    ("report-not-a-run", ["report", f"{T}/not_a_run", "--out", f"{T}/r/r.html"], "not a run folder"),
    ("report-out-folder", ["report", RUN, "--out", f"{T}/not_a_run"], "is a folder"),
    ("report-damaged-line", ["report", f"{T}/torn_middle", "--out", f"{T}/r/r.html"], "line 1, is damaged"),
    ("report-out-long", ["report", RUN, "--out", f"{T}/{'r' * 300}.html"], "over the filesystem's limit"),
    # --- pseudo-label -----------------------------------------------------------------------------
    ("label-missing-run", ["pseudo-label", f"{T}/nothere", "--out", f"{T}/pl"], "checkpoint not found"),
    ("label-missing-data", ["pseudo-label", RUN, "--data", f"{T}/nothere.npy", "--out", f"{T}/pl1"], "nothere.npy"),
    ("label-nan", ["pseudo-label", RUN, "--data", f"{T}/nanrows.npy", "--out", f"{T}/pl2"],
     "give NaN or infinite predictions, first example 0"),
    ("label-batch-zero", ["pseudo-label", RUN, "--batch-size", "0", "--out", f"{T}/pl3"],
     "batch size and shard size must be positive"),
    ("label-shape", ["pseudo-label", RUN, "--data", f"{T}/wide.npy", "--out", f"{T}/pl4"], "have shape \\(4,\\)"),
    ("label-out-file", ["pseudo-label", RUN, "--out", f"{T}/afile"], "is a file"),
    ("label-cuda", ["pseudo-label", RUN, "--out", f"{T}/pl5", "--device", "cuda"], "no CUDA device"),
    ("label-corrupt", ["pseudo-label", f"{T}/corrupt_run", "--out", f"{T}/pl6"], "corrupt"),
    # --- shards ----------------------------------------------------------------------------------
    ("shards-neither", ["shards", "--out", f"{T}/sh"], "give either --dataset NAME"),
    ("shards-both", ["shards", "--out", f"{T}/sh", "--dataset", "cifar10", "--from", f"{T}/photos"],
     "give either --dataset NAME"),
    ("shards-no-out", ["shards", "--from", f"{T}/photos"], "needs --out"),
    ("shards-from-missing", ["shards", "--out", f"{T}/sh", "--from", f"{T}/nothere"], "image folder not found"),
    ("shards-from-empty", ["shards", "--out", f"{T}/sh", "--from", f"{T}/empty_folder"], "holds no image file"),
    ("shards-zero-byte", ["shards", "--out", f"{T}/sh0", "--from", f"{T}/zero"], "empty.png is empty \\(0 bytes\\)"),
    ("shards-truncated", ["shards", "--out", f"{T}/sh1", "--from", f"{T}/trunc"], "cannot decode the image of .*cut.png"),
    ("shards-size-zero", ["shards", "--out", f"{T}/sh2", "--from", f"{T}/photos", "--shard-size", "0"],
     "--shard-size must be positive"),
    ("shards-features", ["shards", "--out", f"{T}/sh3", "--dataset", "digits"], "features, not images"),
    ("shards-csv-no-path", ["shards", "--out", f"{T}/sh4", "--from", f"{T}/list_nopath.csv"], "needs a column 'path'"),
    ("shards-csv-bad-label", ["shards", "--out", f"{T}/sh5", "--from", f"{T}/list_badlabel.csv"],
     "label 'cat' is not a class index"),
    ("shards-out-file", ["shards", "--out", f"{T}/afile", "--from", f"{T}/photos"], "is a file"),
    ("shards-npy-floats", ["shards", "--out", f"{T}/sh6", "--from", f"{T}/rows.npy"], "shards hold images"),
    # --- noisy-student -----------------------------------------------------------------------------
    ("ns-no-out", ["noisy-student", *DIGITS], "needs --out"),
    ("ns-teacher-missing", ["noisy-student", *DIGITS, "--teacher", f"{T}/nothere", "--out", f"{T}/ns1"],
     "checkpoint not found"),
    ("ns-cuda", ["noisy-student", *DIGITS, "--device", "cuda", "--out", f"{T}/ns2"], "no CUDA device"),
    ("ns-out-file", ["noisy-student", *DIGITS, "--out", f"{T}/afile"], "is a file"),
    ("ns-lr-nan", ["noisy-student", *DIGITS, "--lr", "nan", "--out", f"{T}/ns3"], "lr must be a positive finite"),
    # --- compare ---------------------------------------------------------------------------------
    ("compare-folds-one", ["compare", *DIGITS, "--folds", "1", "--out", f"{T}/c1"], "--folds 1"),
    ("compare-jobs-zero", ["compare", *DIGITS, "--jobs", "0", "--out", f"{T}/c1"], "--jobs must be at least 1"),
    ("compare-method-unknown", ["compare", *DIGITS, "--methods", "nosuch", "--out", f"{T}/c1"], "nosuch"),
    ("compare-baseline-unknown", ["compare", *DIGITS, "--baselines", "nosuch", "--out", f"{T}/c1"], "nosuch"),
    ("compare-resume-nothing", ["compare", *DIGITS, "--resume", "--out", f"{T}/c_nowhere"], "nothing to resume"),
    ("compare-fit-best-no-folds", ["compare", *DIGITS, "--folds", "0", "--fit-best", "--out", f"{T}/c1"],
     "--fit-best chooses on validation folds"),
    ("compare-folds-many", ["compare", *DIGITS, "--folds", "9", "--methods", "supervised", "--out", f"{T}/c2"],
     "fewer than the 9 validation folds"),
    ("compare-out-file", ["compare", *DIGITS, "--out", f"{T}/afile"], "is a file"),
    ("compare-no-out", ["compare", *DIGITS], "needs --out"),
    ("compare-cuda", ["compare", *DIGITS, "--device", "cuda", "--out", f"{T}/c3"], "no CUDA device"),
    ("compare-unlabeled-fraction", ["compare", *DIGITS, "--unlabeled-fraction", "0", "--methods", "supervised",
                                    "--out", f"{T}/c4"], "unlabeled_fraction must be in (0, 1]"),
    ("compare-method-option", ["compare", *DIGITS, "--methods", "fixmatch:threshold=abc", "--out", f"{T}/c5"],
     "threshold='abc': takes a number"),
    ("compare-method-range", ["compare", *DIGITS, "--methods", "freematch:fairness_weight=-1", "--out", f"{T}/c5"],
     "--methods freematch: fairness_weight=-1: takes a number >= 0"),
    ("compare-table-dup", ["compare", *TABLE, "--data-path", f"{T}/dup.csv", "--out", f"{T}/c6"],
     "header names 'f0' more than once"),
]


@pytest.mark.parametrize("name,command,message", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_naming_the_problem(world, capsys, name, command, message):
    import re

    argv = [part.replace(T, world["tmp"]) for part in command]
    if "no CUDA device" in message and torch.cuda.is_available():
        pytest.skip("the case is a machine without CUDA")
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals (a missing value): exit 2 and a usage line
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit {code}; stderr:\n{err}"
    assert "Traceback" not in err, err
    pattern = any(mark in message for mark in (".*", "\\(", "\\["))  # a pattern, else the words themselves
    assert (re.search(message, err) if pattern else message in err), f"{name}: expected {message!r} in:\n{err}"
    if "mentor: error:" in err:
        assert err.count("mentor: error:") == 1


def test_debug_shows_the_traceback(world, capsys):
    from mentor.errors import ConfigError

    with pytest.raises(ConfigError, match="not a device name"):
        main(["--debug", "train", *DIGITS, "--device", "tpu", "--out", os.path.join(world["tmp"], "o_debug")])


def test_an_error_from_a_loader_worker_is_its_own_line():
    from mentor.cli import _own_message
    from mentor.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1, in f\nmentor.errors.DataError: cannot decode the image of "
                        "train-000001.tar sample 000000042: broken data\n")
    assert _own_message(wrapped) == "cannot decode the image of train-000001.tar sample 000000042: broken data"
    assert _own_message(DataError("plain")) == "plain"


def test_the_estimators_labels_and_options(world):
    from sklearn.datasets import load_iris

    from mentor import SemiSupervisedClassifier
    from mentor.errors import ConfigError

    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    marked = names.copy()
    marked[::2] = "-1"  # the data's own marker, as a string, with the estimator's default -1
    clf = SemiSupervisedClassifier(method="supervised", steps=5).fit(x, marked)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    missing = names.copy()
    missing[1::3] = None  # None: a missing label, an unlabeled row
    assert SemiSupervisedClassifier(method="supervised", steps=5).fit(x, missing).classes_.tolist() == \
        ["setosa", "versicolor", "virginica"]
    mixed = names.copy()
    mixed[0] = 7
    with pytest.raises(ValueError, match="y mixes labels of types int, str"):
        SemiSupervisedClassifier(method="supervised", steps=5).fit(x, mixed)
    with pytest.raises(ConfigError, match="lr must be a positive finite number, got nan"):
        SemiSupervisedClassifier(method="supervised", steps=5, lr=float("nan")).fit(x, y)
    with pytest.raises(ConfigError, match="threshold='high': takes a number"):
        SemiSupervisedClassifier(method="fixmatch", steps=5, threshold="high").fit(x, y)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda: this machine has no CUDA device"):
            SemiSupervisedClassifier(method="supervised", steps=5, device="cuda").fit(x, y)
    with pytest.raises(ConfigError, match="unknown method 'nosuch'"):
        SemiSupervisedClassifier(method="nosuch").fit(x, y)
    with pytest.raises(ValueError, match="no labeled row"):
        SemiSupervisedClassifier(method="supervised").fit(x, np.full(len(y), -1))
    with pytest.raises(ValueError, match="1 class"):
        SemiSupervisedClassifier(method="supervised").fit(x, np.where(y == 0, 0, -1))
    huge = x.copy()
    huge[:, 0] *= 1e300  # standardised without overflow: the feature is kept, not zeroed
    fitted = SemiSupervisedClassifier(method="supervised", steps=5).fit(huge, y)
    assert np.isfinite(fitted.scale_).all() and fitted.scale_[0] > 1e299


def test_a_table_of_huge_values_standardises_exactly(tmp_path):
    from mentor.data import load_dataset

    path = write(str(tmp_path / "big.csv"), "a,b,y\n1e300,1,x\n-1e300,2,z\n5e299,3,x\n2e300,4,z\n1e299,5,\n"
                                             "3e300,6,x\n-2e300,7,z\n")
    ds = load_dataset("table", path, target="y", test_fraction=0.3)
    assert np.isfinite(ds.x_train).all() and ds.x_train[:, 0].std() > 0.5  # not zeroed
    assert load_dataset("table", write(str(tmp_path / "bom.csv"), "\ufefff0,f1,y\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n"),
                        target="y", test_fraction=0.5).feature_columns == ["f0", "f1"]  # no BOM in the name


# --- inputs bound to runs --------------------------------------------------------------------------
def test_a_run_refuses_a_changed_input_on_resume_eval_and_predict_refuses_a_foreign_checkpoint(world, tmp_path,
                                                                                             capsys):
    csv = write(str(tmp_path / "rows.csv"), table())
    out = str(tmp_path / "run")
    args = ["train", "--dataset", "table", "--data-path", csv, "--target", "y", "--steps", "4", "--eval-every", "2",
            "--out", out, "--no-progress"]
    assert main(args) == 0
    saved = json.load(open(os.path.join(out, "inputs.json")))
    assert len(saved["run_id"]) == 32 and saved["inputs"]["data_path"]["sha256"]
    lines = open(csv).read().splitlines()
    write(csv, "\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # the same rows, reordered
    for command in (args + ["--resume"], ["eval", out]):
        assert main(command) == 2
        assert "the inputs of the run in" in capsys.readouterr().err
    write(csv, "\n".join(lines) + "\n")  # put back: accepted again
    assert main(["eval", out]) == 0


def test_a_comparison_refuses_a_changed_input(tmp_path, capsys):
    csv = write(str(tmp_path / "rows.csv"), table())
    args = ["compare", "--dataset", "table", "--data-path", csv, "--target", "y", "--steps", "3", "--methods",
            "supervised", "--folds", "2", "--out", str(tmp_path / "cmp"), "--no-progress"]
    assert main(args) == 0
    write(csv, table(extra="0.5,0.5,a\n"))
    assert main(args + ["--resume"]) == 2
    assert "the inputs of the comparison in" in capsys.readouterr().err


def test_a_shard_set_refuses_another_source_and_leftovers_are_removed(tmp_path, capsys):
    for name, value in (("a", 10), ("b", 200)):
        for cls in ("cat", "dog"):
            images(str(tmp_path / name / "photos" / cls), value=value)
    out = str(tmp_path / "shards")
    assert main(["shards", "--from", str(tmp_path / "a" / "photos"), "--out", out, "--no-progress"]) == 0
    write(os.path.join(out, ".tmp-killed.tar"), "half a shard")
    assert main(["shards", "--from", str(tmp_path / "a" / "photos"), "--out", out, "--no-progress"]) == 0
    assert not os.path.exists(os.path.join(out, ".tmp-killed.tar"))
    assert main(["shards", "--from", str(tmp_path / "b" / "photos"), "--out", out, "--no-progress"]) == 2
    assert "was written from another source" in capsys.readouterr().err
    os.remove(os.path.join(out, "photos.json"))  # as if killed before the manifest: the partial record decides
    partial = {"shard_size": 10000, "encoding": "png", "shards": [], "labels": [], "sums": None, "sizes": {},
               "channels": None, "source": {"from": {"files": 1, "listing": "another"}}}
    write(os.path.join(out, "photos.partial.json"), json.dumps(partial))
    assert main(["shards", "--from", str(tmp_path / "a" / "photos"), "--out", out, "--no-progress"]) == 2
    assert "started this set from another source" in capsys.readouterr().err


def test_a_replaced_shard_is_refused_on_resume(tmp_path, capsys):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            images(str(tmp_path / "photos" / split / cls), count=4)
    shards = str(tmp_path / "shards")
    assert main(["shards", "--from", str(tmp_path / "photos"), "--out", shards, "--no-progress"]) == 0
    out = str(tmp_path / "run")
    args = ["train", "--dataset", "shards", "--data-path", os.path.join(shards, "photos-train.json"), "--test-path",
            os.path.join(shards, "photos-test.json"), "--num-labeled", "4", "--model", "small_cnn", "--steps", "2",
            "--eval-every", "2",
            "--batch-size", "4", "--unlabeled-batch-size", "4", "--data-hp", "workers=0", "--out", out,
            "--no-progress"]
    assert main(args) == 0
    shard = os.path.join(shards, "photos-train-000000.tar")
    data = open(shard, "rb").read()
    os.utime(shard, ns=(os.stat(shard).st_atime_ns, os.stat(shard).st_mtime_ns + 10**9))  # rewritten, same size
    write(shard, data, "wb")
    assert main(args + ["--resume"]) == 2
    assert "data_path" in capsys.readouterr().err


# --- non-finite training ------------------------------------------------------------------------------
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from mentor.train.checkpoint import load_checkpoint

    out = str(tmp_path / "run")
    # a learning rate that a first evaluation survives and the next steps do not
    args = ["train", *DIGITS[:-5], "--steps", "40", "--eval-every", "1", "--lr", "1e6", "--momentum", "0.9",
            "--out", out, "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training stopped at step" in err and "became NaN or infinite" in err and "Lower --lr" in err
    state = load_checkpoint(os.path.join(out, "checkpoint.pt"))
    assert all(torch.isfinite(t).all() for t in state["method"]["models"].values() if t.is_floating_point())
    assert "keeps its last good checkpoint (step" in err


# --- the doors that took bad input silently or named the wrong cause --------------------------------
def test_a_run_without_inputs_json_goes_on_only_when_told(world, capsys):
    folder = os.path.join(world["tmp"], "no_inputs_run")
    assert main(["eval", folder, "--no-input-check"]) == 0
    assert '"test_accuracy"' in capsys.readouterr().out
    args = ["train", "--dataset", "table", "--data-path", world["csv"], "--target", "y", "--steps", "4",
            "--eval-every", "2", "--ema-decay", "0.9", "--out", folder, "--no-progress"]  # as the run was made
    assert main(args + ["--resume"]) == 2
    assert main(args + ["--resume", "--no-input-check"]) == 0


def test_a_refused_compare_leaves_nothing_in_out(world, capsys):
    if torch.cuda.is_available():
        pytest.skip("the case is a machine without CUDA")
    out = os.path.join(world["tmp"], "c_cuda")
    assert main(["compare", *DIGITS, "--device", "cuda", "--methods", "supervised", "--out", out]) == 2
    assert not os.path.exists(out)
    assert main(["compare", *DIGITS, "--methods", "fixmatch:unlabeled_weight=-1", "--out", out]) == 2
    assert not os.path.exists(out)
    capsys.readouterr()


def test_fit_best_takes_the_same_file_named_relatively(tmp_path, monkeypatch, capsys):
    csv = write(str(tmp_path / "rows.csv"), table())
    out = str(tmp_path / "cmp")
    args = ["--dataset", "table", "--target", "y", "--steps", "3", "--methods", "supervised", "--folds", "2",
            "--no-progress"]
    assert main(["compare", *args, "--data-path", csv, "--out", out]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *args, "--data-path", "rows.csv", "--out", "cmp", "--fit-best"]) == 0, \
        capsys.readouterr().err
    assert os.path.isdir(os.path.join(out, "best"))


def test_a_builtin_run_takes_its_raw_inputs_at_predict(world):
    """digits' loader divides the 0-16 pixel counts by 16; inference.json keeps that scaling, so the
    delivered model takes raw pixels and predicts as the run evaluates."""
    import mentor
    from sklearn.datasets import load_digits

    from mentor.train import load_run

    trainer = load_run(world["digits_run"], device="cpu")
    spec = json.load(open(os.path.join(world["digits_run"], "inference.json")))
    assert spec["feature_scaling"]["std"] == [16.0] * 64
    model = trainer.method.eval_model().eval()
    with torch.no_grad():
        want = model(trainer.views.eval(trainer.x_eval)).argmax(-1).numpy()
    raw = trainer.x_eval.numpy() * 16
    assert raw.max() > 2 and set(np.unique(np.round(raw))) <= set(range(17))  # the 0-16 counts load_digits gives
    assert (mentor.load_model(world["digits_run"]).predict(raw) == want).all()
    wine_like = load_digits().data[:3]
    assert mentor.load_model(world["digits_run"]).predict(wine_like).shape == (3,)


def test_image_predict_names_an_empty_folder_and_notes_0_255_floats(world, tmp_path):
    import mentor
    from mentor.errors import DataError
    from mentor.inference import read_rows

    run = str(tmp_path / "image_run")
    assert main(["train", "--dataset", "image_folder", "--data-path", os.path.join(world["tmp"], "photos"),
                 "--model", "small_cnn", "--steps", "2", "--eval-every", "2", "--out", run, "--no-progress"]) == 0
    spec = json.load(open(os.path.join(run, "inference.json")))
    with pytest.raises(DataError, match="empty_folder holds no image file to predict"):
        read_rows([os.path.join(world["tmp"], "empty_folder")], spec)
    model = mentor.load_model(run)
    pixels = np.full((2, *spec["input_shape"]), 200, np.uint8)
    with pytest.warns(UserWarning, match="float images with values up to 200.*divide by 255"):
        as_float = model.predict_proba(pixels.astype(np.float32))
    np.testing.assert_allclose(model.predict_proba(pixels.astype(np.float32) / 255), model.predict_proba(pixels),
                               atol=1e-6)
    assert as_float.shape == (2, 2)


def test_the_dataframe_door_takes_integer_labels_with_empty_cells_and_names_repeated_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    from mentor import SemiSupervisedClassifier

    path = write(str(tmp_path / "ints.csv"), "f0,f1,target\n" + "".join(
        f"{i % 3 + 0.1 * i:.2f},{(i * 7) % 5},{i % 3 if i < 18 else ''}\n" for i in range(30)))
    frame = pd.read_csv(path)
    assert frame["target"].dtype.kind == "f"  # pandas reads integers with empty cells as floats
    clf = SemiSupervisedClassifier(method="supervised", steps=5).fit(frame, label="target")
    assert clf.classes_.tolist() == [0, 1, 2]
    repeated = pd.DataFrame(np.zeros((4, 3)), columns=["a", "a", "target"])
    with pytest.raises(ValueError, match="several columns named 'a'"):
        SemiSupervisedClassifier(method="supervised", steps=5).fit(repeated, label="target")
