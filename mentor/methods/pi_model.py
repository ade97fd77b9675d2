"""Pi-model: two stochastic passes of the same input must agree.

Source: Laine & Aila 2017, "Temporal Ensembling for Semi-Supervised Learning" (survey seed,
consistency section; REFERENCES.md "Other methods"). Each labeled and unlabeled input is seen
twice with independent noise (augmentation, input noise, dropout); the cost is
CE on the labeled examples + w(t) * MSE(softmax(pass 1), softmax(pass 2)), with gradients
through BOTH passes (the original Pi-model; Mean Teacher's variant stops one side) and
w(t) = w_max * exp(-5 (1 - t / ramp)^2). Both passes run as one forward (one BN batch).
Noise comes from the views: images are augmented; for feature data pass --input-noise.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..losses import softmax_mse
from ..options import STEPS, WEIGHT
from ..registry import METHODS
from .base import StepOutput, fused_forward
from .consistency import ConsistencyMethod


@METHODS.register("pi_model")
class PiModel(ConsistencyMethod):
    name = "pi_model"
    option_ranges = {"consistency_weight": WEIGHT, "ramp_steps": STEPS}
    strong_view = "unused"
    second_view = True

    def __init__(self, model_factory, num_classes, seed=0, consistency_weight: float = 100.0,
                 ramp_steps: Optional[int] = None):
        super().__init__(model_factory, num_classes, seed)
        self.consistency_weight = consistency_weight
        self.ramp_steps = ramp_steps
        self.models["model"] = model_factory()

    def loss(self, batch):
        n_l = len(batch.x_l)
        first, second = fused_forward(self.models["model"], torch.cat([batch.x_l, batch.x_u]),
                                      torch.cat([batch.x_l_alt, batch.x_u_alt]))
        loss_l = F.cross_entropy(first[:n_l], batch.y_l)
        loss_u = softmax_mse(first, F.softmax(second, dim=-1))  # gradient flows into both passes
        weight = self.ramped_weight()
        return StepOutput(loss_l + weight * loss_u,
                          {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "weight_u": torch.tensor(weight)})
