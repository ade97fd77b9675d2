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

# USB (Wang et al. 2022, "USB: A Unified Semi-supervised Learning Benchmark"), its CV settings
# (microsoft/Semi-supervised-learning, config/usb_cv/fixmatch/*.yaml; semilearn/core/utils/build.py):
# FixMatch fine-tuning a pretrained ViT with AdamW, layer-wise lr decay, weight decay 5e-4 (not on
# biases, norms, position embedding or class token), batch 8 labeled + 8 unlabeled (uratio 1),
# 204,800 iterations with 5,120 warm-up and a 7/16-cycle cosine (get_cosine_schedule_with_warmup),
# threshold 0.95, unlabeled weight 1, no EMA (ema_m 0),
# evaluation every 2,048 iterations. Only the settings whose weights timm hosts are here: the
# CIFAR-100, EuroSAT and TissueMNIST settings start from USB's own patch-2 ViTs, not in timm
# (pass their file as pretrained=PATH to a timm ViT of that shape).
_USB = dict(method="fixmatch", steps=204_800, warmup_steps=5120, batch_size=8, unlabeled_batch_size=8,
            optimizer="adamw", weight_decay=5e-4, schedule="cosine_7pi16", eval_every=2048,
            method_options={"threshold": 0.95, "unlabeled_weight": 1.0})

PRESETS: Dict[str, Preset] = {
    "usb-stl10": Preset(
        "USB config/usb_cv/fixmatch/fixmatch_stl10_40_0.yaml: ViT-B/16 from MAE pretraining (timm's "
        "vit_base_patch16_224.mae holds the same MAE release USB loads) at 96 px, AdamW lr 1e-4, layer decay "
        "0.65, 40 labels; give the images with --dataset image_folder (STL-10 is not built in)",
        dict(_USB, model="timm:vit_base_patch16_224.mae", lr=1e-4, layer_decay=0.65, num_labeled=40,
             model_options={"pretrained": "hub", "img_size": 96, "resolution": 96})),
    "usb-semi-aves": Preset(
        "USB config/usb_cv/fixmatch/fixmatch_semi_aves_3959_0.yaml: ViT-S/16 at 224 px, AdamW lr 1e-3, layer "
        "decay 0.65, 3,959 labels, 200 classes; the weights are timm's vit_small_patch16_224 (ImageNet-21k then "
        "1k), where USB used its own ImageNet-1k ViT-S (pretrained=PATH takes that file)",
        dict(_USB, model="timm:vit_small_patch16_224", lr=1e-3, layer_decay=0.65, num_labeled=3959,
             model_options={"pretrained": "hub", "resolution": 224})),
    "mpl-paper": Preset(
        "MPL Algorithm 1 as written, for any dataset: sampled hard labels, the scalar feedback "
        "h = eta_S <g_l, g_u> on the teacher's mean CE, a student that learns labels only in a final "
        "finetuning at lr 1e-5 over the paper's share of the run (1,000 of 1M steps)",
        dict(method="meta_pseudo_labels",
             method_options=dict(labels="sample", feedback="dot", student_labeled_weight=0.0,
                                 finetune_steps=0.001, finetune_lr=1e-5))),
    "fixmatch-cifar10": Preset(
        "FixMatch (Sohn et al. 2020), CIFAR-10 settings: WRN-28-2, 64 + 448 per step, Nesterov lr 0.03 with "
        "cos(7 pi k / 16K), wd 5e-4, threshold 0.95, EMA 0.999, 2^20 steps",
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
        "The public PyTorch implementation's settings that reached 96.0% on CIFAR-10-4K: 300k steps, lr 0.05 "
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
