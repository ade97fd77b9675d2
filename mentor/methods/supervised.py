"""Supervised baseline: cross-entropy on the labeled batch only (MPL Figure 2, left panel)."""
from __future__ import annotations

import torch.nn.functional as F

from ..options import UNIT
from ..registry import METHODS
from .base import Method, StepOutput


@METHODS.register("supervised")
class Supervised(Method):
    name = "supervised"
    option_ranges = {"label_smoothing": UNIT}
    uses_unlabeled = False
    strong_view = "unused"
    capturable = True  # one loss, no phase or ramp: the step is the same graph every time

    def __init__(self, model_factory, num_classes, seed=0, label_smoothing: float = 0.0):
        super().__init__(model_factory, num_classes, seed)
        self.label_smoothing = label_smoothing
        self.models["model"] = model_factory()

    def loss(self, batch):
        logits = self.models["model"](batch.x_l)
        loss = F.cross_entropy(logits, batch.y_l, label_smoothing=self.label_smoothing)
        return StepOutput(loss, {"loss_l": loss.detach()})
