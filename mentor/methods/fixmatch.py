"""FixMatch: confident pseudo labels from a weak view teach the strong view.

Source: Sohn et al. 2020, summarised in REFERENCES.md "FixMatch and UDA". Per step:
q = softmax(f(weak(u))) without gradient; mask = max q >= threshold (0.95);
loss = CE(y_l, f(weak(x_l))) + lambda_u * mean over the whole unlabeled batch of
mask * CE(argmax q, f(strong(u))). Labeled, weak and strong views go through ONE train-mode
forward, so batch norm sees them as one batch (as the paper's code does).
The recipe (Nesterov 0.9, lr 0.03 with cos(7 pi k / 16 K), wd 5e-4 off BN/bias, EMA 0.999,
64 labeled + 448 unlabeled) is the preset ``fixmatch-cifar10``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import METHODS
from .base import Method, StepOutput, fused_forward


@METHODS.register("fixmatch")
class FixMatch(Method):
    name = "fixmatch"
    strong_view = "required"
    capturable = True  # one loss, no phase or ramp: the step is the same graph every time
    # The conformance suite trains a few steps only: no prediction reaches 0.95 by then.
    smoke_hparams = {"threshold": 0.0}

    def __init__(self, model_factory, num_classes, seed=0, threshold: float = 0.95,
                 unlabeled_weight: float = 1.0, temperature: float = 1.0):
        super().__init__(model_factory, num_classes, seed)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.threshold = threshold
        self.unlabeled_weight = unlabeled_weight
        self.temperature = temperature
        self.models["model"] = model_factory()

    def loss(self, batch):
        logits_l, logits_weak, logits_strong = fused_forward(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_strong)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        with torch.no_grad():
            confidence, pseudo = F.softmax(logits_weak / self.temperature, dim=-1).max(dim=-1)
            mask = (confidence >= self.threshold).float()
        loss_u = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
        loss = loss_l + self.unlabeled_weight * loss_u
        return StepOutput(loss, {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "mask_rate": mask.mean()})
