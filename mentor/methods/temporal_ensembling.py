"""Temporal Ensembling: predictions must agree with an ensemble of the model's past predictions.

Source: Laine & Aila 2017 (survey seed, consistency section; REFERENCES.md "Other methods").
Every unlabeled example i keeps Z_i, an exponential moving average (alpha = 0.6) of the
model's softmax predictions on it, updated once per epoch with that epoch's prediction:
Z_i <- alpha Z_i + (1 - alpha) z_i. The target is the bias-corrected z~_i = Z_i / (1 - alpha^t_i),
t_i the number of epochs in which i was seen (the correction undoes the zero start of Z).
Cost: CE on labeled examples + w(t) * MSE(softmax(f(x_i)), z~_i), with w ramped by
exp(-5 (1 - t / ramp)^2). Until an example has a target (its first epoch) it gives no
consistency cost. The sample indices come with every batch (``Batch.idx_u``); an epoch is
one pass of the batch stream over the unlabeled pool (floor(N_u / B_u) steps).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_unit_interval
from ..options import MOMENTUM, STEPS, WEIGHT
from ..registry import METHODS
from .base import StepOutput, fused_forward
from .consistency import ConsistencyMethod


@METHODS.register("temporal_ensembling")
class TemporalEnsembling(ConsistencyMethod):
    name = "temporal_ensembling"
    option_ranges = {"ensemble_decay": MOMENTUM, "consistency_weight": WEIGHT, "ramp_steps": STEPS}
    needs_pool_in_memory = "keeps a running prediction for every example of the pool"
    strong_view = "unused"

    def __init__(self, model_factory, num_classes, seed=0, ensemble_decay: float = 0.6,
                 consistency_weight: float = 100.0, ramp_steps: Optional[int] = None):
        super().__init__(model_factory, num_classes, seed)
        check_unit_interval("ensemble_decay", ensemble_decay)
        self.ensemble_decay = ensemble_decay
        self.consistency_weight = consistency_weight
        self.ramp_steps = ramp_steps
        self.models["model"] = model_factory()
        self.ensemble: Optional[torch.Tensor] = None     # Z, (N_u, C)
        self.updates: Optional[torch.Tensor] = None      # t_i, (N_u,)
        self.epoch_preds: Optional[torch.Tensor] = None  # this epoch's predictions, (N_u, C)
        self.epoch_seen: Optional[torch.Tensor] = None   # (N_u,) bool
        self.steps_per_epoch = 0

    def _init_state(self, batch, device):
        if batch.idx_u is None:
            raise ConfigError("temporal_ensembling needs the unlabeled sample indices in each batch (Batch.idx_u)")
        n = self.num_unlabeled or int(batch.idx_u.max()) + 1
        self.ensemble = torch.zeros(n, self.num_classes, device=device)
        self.updates = torch.zeros(n, dtype=torch.long, device=device)
        self.epoch_preds = torch.zeros(n, self.num_classes, device=device)
        self.epoch_seen = torch.zeros(n, dtype=torch.bool, device=device)
        self.steps_per_epoch = max(1, n // len(batch.x_u))

    def targets(self, idx: torch.Tensor):
        """Bias-corrected ensemble predictions of the examples idx, and which of them have one."""
        t = self.updates[idx]
        has_target = t > 0
        correction = 1.0 - self.ensemble_decay ** t.clamp_min(1).float()
        return self.ensemble[idx] / correction[:, None], has_target

    def loss(self, batch):
        logits_l, logits_u = fused_forward(self.models["model"], batch.x_l, batch.x_u)
        if self.ensemble is None:
            self._init_state(batch, logits_u.device)
        idx = batch.idx_u.to(logits_u.device)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        target, has_target = self.targets(idx)
        probs = F.softmax(logits_u, dim=-1)
        per_example = ((probs - target) ** 2).mean(dim=-1) * has_target.float()
        loss_u = per_example.sum() / len(idx)  # examples without a target yet count as zero
        weight = self.ramped_weight()
        with torch.no_grad():
            self.epoch_preds[idx] = probs.detach()
            self.epoch_seen[idx] = True
            if (self.step_index + 1) % self.steps_per_epoch == 0:
                self._end_epoch()
        return StepOutput(loss_l + weight * loss_u,
                          {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(),
                           "has_target": has_target.float().mean()})

    def _end_epoch(self):
        seen = self.epoch_seen
        a = self.ensemble_decay
        self.ensemble[seen] = a * self.ensemble[seen] + (1 - a) * self.epoch_preds[seen]
        self.updates[seen] += 1
        self.epoch_seen.zero_()

    def extra_state(self):
        return {"ensemble": self.ensemble, "updates": self.updates, "epoch_preds": self.epoch_preds,
                "epoch_seen": self.epoch_seen, "steps_per_epoch": self.steps_per_epoch}

    def load_extra_state(self, state):
        self.ensemble, self.updates = state["ensemble"], state["updates"]
        self.epoch_preds, self.epoch_seen = state["epoch_preds"], state["epoch_seen"]
        self.steps_per_epoch = int(state["steps_per_epoch"])
