"""The trainer on images: views, kill + resume through the augmentation pipeline, optimizer
groups, schedules, median of the last evaluations, TensorBoard, precision, presets."""
import json
import math
import os

import numpy as np
import pytest
import torch

from mentor.cli import build_parser, config_from_args, main
from mentor.data import ArrayDataset, make_split
from mentor.errors import ConfigError
from mentor.train import TrainConfig, Trainer
from mentor.train.schedule import lr_multiplier

from conftest import blobs, die_at_draw, patch_images


def tiny_images(n=48, classes=3, size=8, seed=0):
    """Class c: a bright patch in corner c of a dark noisy uint8 image."""
    rng = np.random.default_rng(seed)
    x, y = patch_images(n, rng, classes, size)
    xt, yt = patch_images(24, rng, classes, size)
    return ArrayDataset("tiny_images", x, y, xt, yt, classes)


def image_config(method, out=None, **overrides):
    base = dict(method=method, num_labeled=9, model="small_cnn", model_options={"widths": [4, 8]}, steps=6,
                batch_size=6, unlabeled_batch_size=12, lr=0.05, eval_every=3, seed=0, device="cpu",
                out=out, progress=False, weight_decay=5e-4)
    base.update(overrides)
    return TrainConfig(**base)


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.method.models.state_dict().items()}


@pytest.mark.parametrize("method", ["fixmatch", "meta_pseudo_labels"])
def test_image_run_killed_and_resumed_follows_the_same_trajectory(method, tmp_path):
    ds = tiny_images()
    hp = {"threshold": 0.0} if method == "fixmatch" else {"uda_threshold": 0.0}
    straight = Trainer(image_config(method, str(tmp_path / "a"), method_options=hp), dataset=ds)
    straight.fit()
    killed = Trainer(image_config(method, str(tmp_path / "b"), method_options=hp), dataset=ds)
    die_at_draw(killed, 5)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(image_config(method, str(tmp_path / "b"), method_options=hp), dataset=ds)
    resumed.fit(resume=True)
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k


def test_image_batches_are_augmented_views():
    trainer = Trainer(image_config("fixmatch"), dataset=tiny_images())
    batch = trainer.stream.next()
    assert batch.x_l.dtype == torch.float32 and batch.x_l.shape == (6, 3, 8, 8)
    assert batch.x_u_strong is not None and not torch.equal(batch.x_u, batch.x_u_strong)
    assert abs(float(trainer.views.eval(trainer.stream.x_u).mean())) < 0.2  # standardised
    supervised = Trainer(image_config("supervised"), dataset=tiny_images())
    assert supervised.stream.next().x_u_strong is None  # no strong view made for a method that ignores it


def test_weight_decay_skips_batch_norm_and_bias():
    trainer = Trainer(image_config("supervised"), dataset=tiny_images())
    groups = trainer.method.optimizers["model"].param_groups
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    every = Trainer(image_config("supervised", decay_bn_and_bias=True), dataset=tiny_images())
    assert [g["weight_decay"] for g in every.method.optimizers["model"].param_groups] == [5e-4]


def test_fixmatch_cosine_schedule():
    assert lr_multiplier(0, 1000, "cosine_7pi16") == 1.0
    assert lr_multiplier(1000, 1000, "cosine_7pi16") == pytest.approx(math.cos(7 * math.pi / 16))
    assert lr_multiplier(500, 1000, "cosine_7pi16") == pytest.approx(math.cos(7 * math.pi / 32))
    assert lr_multiplier(1000, 1000, "cosine") == pytest.approx(0.0)


def test_summary_reports_final_and_median_of_last_evaluations(tmp_path):
    out = str(tmp_path / "run")
    summary = Trainer(image_config("supervised", out, steps=8, eval_every=2, median_of=3, ema_decay=0.9,
                                   tensorboard=True), dataset=tiny_images()).fit()
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    assert summary["final_test_accuracy"] == records[-1]["test_accuracy"]
    assert summary["median_last_test_accuracy"] == float(np.median([r["test_accuracy"] for r in records[-3:]]))
    assert summary["median_of_last"] == 3 and "median_last_ema_test_accuracy" in summary
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(out, "tensorboard")))


def test_bf16_autocast_and_channels_last_run_on_cpu():
    trainer = Trainer(image_config("fixmatch", precision="bf16", channels_last=True, method_options={"threshold": 0.0}),
                      dataset=tiny_images())
    assert trainer.method.amp == ("cpu", torch.bfloat16)
    conv = next(m for m in trainer.method.models.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    summary = trainer.fit()
    assert math.isfinite(summary["final_test_loss"])


def test_strong_view_methods_need_one():
    with pytest.raises(ConfigError, match="fixmatch.*strong view.*--strong-noise"):
        Trainer(TrainConfig(method="fixmatch", num_labeled=9, steps=2, device="cpu", progress=False,
                            model_options={"hidden": [4]}), dataset=blobs())
    with pytest.raises(ConfigError, match="--strong-noise is for feature data"):
        Trainer(image_config("fixmatch", strong_noise=0.1), dataset=tiny_images())


def test_mpl_split_is_saved_with_the_run(tmp_path):
    ds = tiny_images(n=5030)
    Trainer(image_config("supervised", str(tmp_path / "r"), split="mpl", num_labeled=12, steps=1,
                         unlabeled_pool="rest"), dataset=ds).fit()
    with open(tmp_path / "r" / "split.json") as f:
        split = json.load(f)
    assert split["protocol"] == "mpl" and split["labeled"] == list(range(5000, 5012))
    assert 5005 not in split["unlabeled"] and 4999 in split["unlabeled"]


def parse(argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_presets_and_flag_overrides():
    config = parse(["--preset", "mpl-cifar10", "--data-path", "P", "--num-labeled", "250", "--hp", "teacher_lr=0.2"])
    assert config.method == "meta_pseudo_labels" and config.model == "wrn28_2" and config.num_labeled == 250
    assert config.method_options["teacher_lr"] == 0.2 and config.method_options["student_dropout"] == 0.35
    assert config.lr == 0.3 and config.weight_decay == 5e-4 and config.data_path == "P" and config.preset == "mpl-cifar10"
    fix = parse(["--preset", "fixmatch-cifar10", "--lr", "0.01"])
    assert (fix.lr, fix.schedule, fix.ema_decay, fix.unlabeled_batch_size) == (0.01, "cosine_7pi16", 0.999, 448)
    assert parse([]).method == TrainConfig().method  # no preset, no flags: the defaults
    for name in ("uda-cifar10", "mpl-cifar10-300k", "mpl-svhn"):
        assert parse(["--preset", name]).preset == name


def test_unknown_preset_lists_the_choices(capsys):
    assert main(["train", "--preset", "mpl-imagenet"]) == 2
    assert "unknown preset 'mpl-imagenet'; choose one of: fixmatch-cifar10" in capsys.readouterr().err


def test_validation_split_is_held_out_and_evaluated(tmp_path):
    out = str(tmp_path / "v")
    summary = Trainer(image_config("supervised", out, validation_size=9, steps=2, eval_every=1),
                      dataset=tiny_images()).fit()
    with open(tmp_path / "v" / "split.json") as f:
        split = json.load(f)
    validation = set(split["validation"])
    assert len(validation) == 9 and not validation & set(split["labeled"]) and not validation & set(split["unlabeled"])
    assert sorted(np.bincount(tiny_images().y_train[sorted(validation)]).tolist()) == [3, 3, 3]
    assert "final_val_accuracy" in summary and "median_last_val_accuracy" in summary
    mpl = make_split(np.arange(6000) % 10, 100, 10, seed=0, protocol="mpl", validation_size=500)
    assert mpl.validation == list(range(500)) and mpl.labeled[0] == 5000
