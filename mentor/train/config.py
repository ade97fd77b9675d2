"""Every setting of a training run, with defaults, in one dataclass saved with the run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("constant", "cosine")

# Settings that may differ between a run and its resumption without changing the trajectory.
RESUME_FREE = ("out", "progress", "device", "eval_every")


@dataclass
class TrainConfig:
    method: str = "supervised"
    dataset: str = "two_moons"
    data_path: Optional[str] = None
    dataset_options: dict = field(default_factory=dict)
    num_labeled: int = 10
    unlabeled_pool: str = "all"          # "all" (the papers' default) or "rest"
    model: str = "mlp"
    model_options: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 64                 # labeled examples per step
    unlabeled_batch_size: int = 448      # unlabeled examples per step
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9                # for sgd / nesterov
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    ema_decay: Optional[float] = None    # EMA copy of the evaluated model, None = off
    eval_every: int = 100                # 0 = evaluate only at the end
    strong_noise: Optional[float] = None  # std of a Gaussian-noise strong view of unlabeled data
    seed: int = 0
    split_seed: Optional[int] = None     # seed of the labeled split; None = seed
    device: str = "auto"
    out: Optional[str] = None
    progress: bool = True

    def validate(self) -> "TrainConfig":
        if self.steps <= 0:
            raise ConfigError(f"steps must be positive, got {self.steps}")
        for name in ("batch_size", "unlabeled_batch_size", "num_labeled"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0 or self.eval_every < 0:
            raise ConfigError("warmup_steps and eval_every must be >= 0")
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
