"""UDA, Unsupervised Data Augmentation: consistency between sharpened predictions on a weak
view and predictions on a strong view.

Source: Xie et al. 2020, summarised in REFERENCES.md "FixMatch and UDA"; the MPL appendix
(Table 7) gives its CIFAR-10 / SVHN settings. Per step:
q = stopgrad(softmax(f(weak(u)) / T)) (T = 0.4), mask = max q >= threshold (0.8);
loss = CE(y_l, f(x_l)) + lambda * mean(mask * CE(q, f(strong(u)))).
The paper writes KL(q || f(strong u)); it differs from CE(q, .) by the entropy of q, which
carries no gradient, so the update is the same. Optional Training Signal Annealing (TSA):
labeled examples on which the model already gives the true class a probability above
eta_t = alpha_t (1 - 1/K) + 1/K are left out of the supervised loss, alpha_t rising from 0
to 1 on a linear, log or exp schedule. One fused forward over all views (shared BN batch).
Takes the shared ``dist_align`` / ``debias`` options (mentor.methods.alignment) on q.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import linear_ramp, uda_consistency
from ..options import POSITIVE, STEPS, UNIT, WEIGHT, Choice
from ..registry import METHODS
from .base import Method, StepOutput, fused_forward, resolve_steps

TSA_SCHEDULES = ("none", "linear", "log", "exp")


def tsa_threshold(schedule: str, progress: float, num_classes: int) -> float:
    """eta_t of UDA's Training Signal Annealing (1.0 = keep every labeled example)."""
    if schedule == "none":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    alpha = {"linear": progress, "log": 1 - math.exp(-5 * progress), "exp": math.exp(5 * (progress - 1))}[schedule]
    return alpha * (1 - 1 / num_classes) + 1 / num_classes


@METHODS.register("uda")
class UDA(Method):
    name = "uda"
    option_ranges = {"temperature": POSITIVE, "threshold": UNIT, "unlabeled_weight": WEIGHT, "ramp_steps": STEPS,
                     "tsa": Choice(*TSA_SCHEDULES), "label_smoothing": UNIT}
    strong_view = "required"
    # The conformance suite trains a few steps only: no sharpened prediction reaches 0.8 by then.
    smoke_hparams = {"threshold": 0.0}
    makes_pseudo_labels = True

    def __init__(self, model_factory, num_classes, seed=0, temperature: float = 0.4, threshold: float = 0.8,
                 unlabeled_weight: float = 1.0, ramp_steps: int = 0, tsa: str = "none",
                 label_smoothing: float = 0.0):
        super().__init__(model_factory, num_classes, seed)
        if tsa not in TSA_SCHEDULES:
            raise ConfigError(f"unknown tsa {tsa!r}; choose one of {', '.join(TSA_SCHEDULES)}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.threshold = threshold
        self.unlabeled_weight = unlabeled_weight
        self.ramp_steps = ramp_steps
        self.tsa = tsa
        self.label_smoothing = label_smoothing
        self.models["model"] = model_factory()

    def setup(self, total_steps):
        super().setup(total_steps)
        self.ramp_steps = resolve_steps("ramp_steps", self.ramp_steps, total_steps)
        self.hparams["ramp_steps"] = self.ramp_steps

    def loss(self, batch):
        logits_l, logits_weak, logits_strong = fused_forward(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_strong)
        per_example = F.cross_entropy(logits_l, batch.y_l, reduction="none", label_smoothing=self.label_smoothing)
        eta = tsa_threshold(self.tsa, self.step_index / max(1, self.total_steps), self.num_classes)
        with torch.no_grad():
            p_true = F.softmax(logits_l, dim=-1).gather(1, batch.y_l[:, None]).squeeze(1)
            keep = (p_true <= eta).float()
        loss_l = (per_example * keep).sum() / keep.sum().clamp_min(1.0)
        logits_weak = self.adjust_pseudo_label_logits(logits_weak, self.temperature, logits_l)
        loss_u, mask_rate = uda_consistency(logits_weak, logits_strong, self.temperature, self.threshold)
        weight = self.unlabeled_weight * linear_ramp(self.step_index, self.ramp_steps)
        logs = {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "mask_rate": mask_rate,
                "tsa_kept": keep.mean()}
        return StepOutput(loss_l + weight * loss_u, logs)
