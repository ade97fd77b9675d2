"""Every setting of a training run, with defaults, in one dataclass saved with the run."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from ..data.splits import NOISE_KINDS, PROTOCOLS
from ..errors import ConfigError
from ..registry import METHODS
from .schedule import SCHEDULES

OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")

# Settings that may differ between a run and its resumption without changing the trajectory.
RESUME_FREE = ("out", "progress", "device", "eval_every", "tensorboard", "compile", "capture", "median_of", "preset")


@dataclass
class TrainConfig:
    method: str = "supervised"
    dataset: str = "two_moons"
    data_path: Optional[str] = None
    dataset_options: dict = field(default_factory=dict)
    num_labeled: int = 10                # 0: every labeled training example (a table's labels as given)
    split: str = "balanced"              # "balanced" (seeded, N/C per class) or "mpl" (MPL appendix C.1)
    unlabeled_pool: str = "all"          # "all" (the papers' default) or "rest"
    validation_size: int = 0             # training examples held out for validation (val_accuracy)
    validation_fold: Optional[list] = None  # [index, folds]: hold out that stratified fold of the labeled
                                            # examples instead (shuffled with seed; mentor compare's cells)
    unlabeled_fraction: float = 1.0      # keep a seeded fraction of the unlabeled pool
    labeled_classes: Optional[list] = None  # label only these classes; the others' examples become unlabeled
    class_mismatch: Optional[float] = None  # with labeled_classes: this fraction of a fixed-size pool is
                                            # drawn from the other classes (Oliver et al. 2018)
    label_noise: float = 0.0             # fraction of labeled examples whose label is redrawn (seeded, saved in split.json)
    noise_kind: str = "symmetric"        # symmetric (uniform over classes) or asymmetric (class c -> c + 1)
    model: str = "mlp"
    model_options: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 64                 # labeled examples per step
    unlabeled_batch_size: int = 448      # unlabeled examples per step
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9                # for sgd / nesterov
    weight_decay: float = 0.0            # adamw: decoupled (Loshchilov & Hutter); else L2 in the gradient
    layer_decay: float = 1.0             # layer-wise lr decay: the layer d below the classifier trains at lr * this^d
    backbone_lr_scale: float = 1.0       # every layer but the classifier trains at lr * this (fine-tuning)
    decay_bn_and_bias: bool = False      # weight decay on BN / bias too (FixMatch excludes them)
    schedule: str = "cosine"             # constant, cosine or cosine_7pi16 (FixMatch)
    warmup_steps: int = 0
    ema_decay: Optional[float] = None    # EMA copy of the evaluated model, None = off
    eval_every: int = 100                # 0 = evaluate only at the end
    median_of: int = 20                  # also report the median test accuracy of the last N evaluations
    strong_noise: Optional[float] = None  # std of a Gaussian-noise strong view of feature (non-image) data
    input_noise: Optional[float] = None  # std of Gaussian noise on labeled and weak views (Pi-model, Mean Teacher)
    augment: bool = True                 # images: flip (unless digits) + translate for labeled and weak views
    translate: float = 0.125             # images: shift up to this fraction of the side (4 px on 32)
    randaugment_ops: int = 2             # images: RandAugment ops per image in the strong view
    randaugment_magnitude: Optional[float] = None  # images: fixed fraction of each op's maximum; None = random per image
    cutout: float = 0.5                  # images: Cutout side as a fraction of the image side (16 px on 32)
    precision: str = "auto"              # auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16
    channels_last: Optional[bool] = None  # None: on for images on CUDA
    compile: bool = False                # torch.compile the models
    capture: bool = False                # compile the method's loss (forward + backward) and optimizer steps as
                                         # static graphs; on CUDA replayed as CUDA graphs (mode reduce-overhead)
    tensorboard: bool = False            # also log to OUT/tensorboard
    sync_bn: bool = False                # under torchrun: batch-norm statistics over all ranks (SyncBatchNorm, CUDA)
    preset: Optional[str] = None         # the recipe this config started from (recorded only)
    seed: int = 0
    split_seed: Optional[int] = None     # seed of the labeled split; None = seed
    device: str = "auto"
    out: Optional[str] = None
    progress: bool = True

    def validate(self) -> "TrainConfig":
        if self.steps <= 0:
            raise ConfigError(f"steps must be positive, got {self.steps}")
        for name in ("batch_size", "unlabeled_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_labeled < 0:
            raise ConfigError(f"num_labeled must be >= 0 (0: every labeled training example), got {self.num_labeled}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.split not in PROTOCOLS:
            raise ConfigError(f"unknown split protocol {self.split!r}; choose one of {', '.join(PROTOCOLS)}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ConfigError(f"label_noise must be a fraction in [0, 1], got {self.label_noise}")
        if self.validation_fold is not None:
            if len(self.validation_fold) != 2 or not 0 <= self.validation_fold[0] < self.validation_fold[1] \
                    or self.validation_fold[1] < 2:
                raise ConfigError(f"validation_fold must be [index, folds] with folds >= 2 and 0 <= index < folds, "
                                  f"got {self.validation_fold}")
            if self.validation_size:
                raise ConfigError("hold out either validation_size examples or a validation_fold, not both")
        if not 0.0 < self.unlabeled_fraction <= 1.0:
            raise ConfigError(f"unlabeled_fraction must be in (0, 1], got {self.unlabeled_fraction}")
        if self.class_mismatch is not None:
            if self.labeled_classes is None:
                raise ConfigError("class_mismatch needs labeled_classes: the classes the labels come from")
            if not 0.0 <= self.class_mismatch <= 1.0:
                raise ConfigError(f"class_mismatch must be a fraction in [0, 1], got {self.class_mismatch}")
        if self.noise_kind not in NOISE_KINDS:
            raise ConfigError(f"unknown noise kind {self.noise_kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.median_of < 1:
            raise ConfigError(f"median_of must be >= 1, got {self.median_of}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.backbone_lr_scale < 0:
            raise ConfigError(f"backbone_lr_scale must be >= 0 (0 freezes the backbone), got {self.backbone_lr_scale}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a positive finite number, got {self.lr}")
        if not math.isfinite(self.momentum) or not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for name in ("strong_noise", "input_noise"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0 or self.eval_every < 0:
            raise ConfigError("warmup_steps and eval_every must be >= 0")
        if self.method in METHODS:  # each option's type and declared range, before any work
            METHODS.get(self.method).check_hparams(dict(self.method_options or {}))
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def resolved_split_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed
