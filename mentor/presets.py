"""Recipes: named sets of training settings, each citing where its numbers come from.

``mentor train --preset NAME --data-path P --num-labeled 4000`` runs one; any flag given on the
command line overrides the preset. In Python: ``TrainConfig(**preset_settings(NAME), ...)``.
The split is the seeded class-balanced one; ``--split mpl`` takes MPL appendix C.1's (skip
the first 5,000 images of the official files, label the next N) when the data is in the
official order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from .errors import ConfigError


@dataclass(frozen=True)
class Preset:
    source: str
    settings: dict


# FixMatch (Sohn et al. 2020; REFERENCES.md "FixMatch and UDA"): 2^20 steps, 64 labeled +
# 7 x 64 unlabeled, Nesterov 0.9, lr 0.03 with cos(7 pi k / 16 K), wd 5e-4 (not on BN/bias),
# threshold 0.95, lambda_u 1, EMA 0.999 for evaluation, WRN-28-2.
_FIXMATCH = dict(method="fixmatch", model="wrn28_2", steps=2**20, batch_size=64, unlabeled_batch_size=448,
                 optimizer="nesterov", lr=0.03, momentum=0.9, weight_decay=5e-4, schedule="cosine_7pi16",
                 ema_decay=0.999, method_options={"threshold": 0.95, "unlabeled_weight": 1.0}, eval_every=5000)

# MPL appendix Table 8, common rows: wd 5e-4, label smoothing 0.1, BN decay 0.99 (momentum
# 0.01), 1M steps, 2,000 warmup steps, Nesterov 0.9, cosine decay; batch 128 labeled. The
# unlabeled batch is 7 x 128, the UDA ratio of the official code. Student waits 3k steps and
# UDA ramps over 5k (REFERENCES.md, "Official CIFAR settings"); finetune 1,000 steps at 1e-5.
_MPL_COMMON = dict(method="meta_pseudo_labels", model="wrn28_2", model_options={"bn_momentum": 0.01},
                   steps=1_000_000, warmup_steps=2000, batch_size=128, unlabeled_batch_size=896,
                   optimizer="nesterov", momentum=0.9, weight_decay=5e-4, schedule="cosine", eval_every=5000)
# The paper's student learns labels only when finetuned (student_labeled_weight 0).
_MPL_METHOD = dict(labels="sample", feedback="cosine", label_smoothing=0.1, uda_threshold=0.6,
                   uda_ramp_steps=5000, student_wait_steps=3000, finetune_steps=1000, finetune_lr=1e-5,
                   student_labeled_weight=0.0)

PRESETS: Dict[str, Preset] = {
    "mpl-paper": Preset(
        "MPL Algorithm 1 as written, for any dataset: sampled hard labels, the scalar feedback "
        "h = eta_S <g_l, g_u> on the teacher's mean CE, a student that learns labels only in a final "
        "finetuning at lr 1e-5 over the paper's share of the run (1,000 of 1M steps)",
        dict(method="meta_pseudo_labels",
             method_options=dict(labels="sample", feedback="dot", student_labeled_weight=0.0,
                                 finetune_steps=0.001, finetune_lr=1e-5))),
    "fixmatch-cifar10": Preset(
        "FixMatch (Sohn et al. 2020), CIFAR-10 settings; REFERENCES.md 'FixMatch and UDA'",
        dict(_FIXMATCH, dataset="cifar10", num_labeled=4000)),
    "uda-cifar10": Preset(
        "MPL appendix Table 7 (UDA baseline, CIFAR-10): lr 0.3, 1M steps, 5k warmup, batch 128 for both "
        "objectives, dropout 0.5, wd 5e-4, UDA factor 2.5, temperature 0.7; confidence mask 0.8 (UDA paper)",
        dict(method="uda", dataset="cifar10", num_labeled=4000, model="wrn28_2",
             model_options={"dropout": 0.5, "bn_momentum": 0.01}, steps=1_000_000, warmup_steps=5000,
             batch_size=128, unlabeled_batch_size=128, optimizer="nesterov", lr=0.3, momentum=0.9,
             weight_decay=5e-4, schedule="cosine", eval_every=5000,
             method_options={"temperature": 0.7, "threshold": 0.8, "unlabeled_weight": 2.5})),
    "mpl-cifar10": Preset(
        "MPL appendix Table 8, CIFAR-10 column: student lr 0.3 dropout 0.35, teacher lr 0.125 dropout 0.5, "
        "UDA factor 1.0, temperature 0.8",
        dict(_MPL_COMMON, dataset="cifar10", num_labeled=4000, lr=0.3,
             method_options=dict(_MPL_METHOD, teacher_lr=0.125, student_dropout=0.35, teacher_dropout=0.5,
                                 uda_weight=1.0, uda_temperature=0.8))),
    "mpl-cifar10-300k": Preset(
        "The public PyTorch settings that reached 96.0% on CIFAR-10-4K (REFERENCES.md): 300k steps, lr 0.05 "
        "for both, 128 + 7 x 128, wd 5e-4, student EMA 0.995, dropout 0.2, 5k warmup; UDA weight 8 ramped over "
        "5k steps, temperature 0.7, threshold 0.6, label smoothing 0.15, student after 3k steps",
        dict(_MPL_COMMON, dataset="cifar10", num_labeled=4000, steps=300_000, warmup_steps=5000, lr=0.05,
             ema_decay=0.995, model_options={"bn_momentum": 0.01, "dropout": 0.2},
             method_options=dict(_MPL_METHOD, teacher_lr=0.05, label_smoothing=0.15, uda_weight=8.0,
                                 uda_temperature=0.7, finetune_lr=3e-5))),
    "mpl-svhn": Preset(
        "MPL appendix Table 8, SVHN column: student lr 0.15 dropout 0.45, teacher lr 0.05 dropout 0.65, "
        "UDA factor 2.5, temperature 1.25; SVHN-1K",
        dict(_MPL_COMMON, dataset="svhn", num_labeled=1000, lr=0.15,
             method_options=dict(_MPL_METHOD, teacher_lr=0.05, student_dropout=0.45, teacher_dropout=0.65,
                                 uda_weight=2.5, uda_temperature=1.25))),
}


def preset_settings(name: str) -> dict:
    """The TrainConfig fields of a preset (a fresh copy), with the preset's name recorded."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].settings.items()}
    return {**settings, "preset": name}
