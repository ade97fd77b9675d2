"""FixMatch: confident pseudo labels from a weak view teach the strong view.

Source: Sohn et al. 2020, summarised in REFERENCES.md "FixMatch and UDA". Per step:
q = softmax(f(weak(u))) without gradient; mask = max q >= threshold (0.95);
loss = CE(y_l, f(weak(x_l))) + lambda_u * mean over the whole unlabeled batch of
mask * CE(argmax q, f(strong(u))). Labeled, weak and strong views go through ONE train-mode
forward, so batch norm sees them as one batch (as the paper's code does).
The recipe (Nesterov 0.9, lr 0.03 with cos(7 pi k / 16 K), wd 5e-4 off BN/bias, EMA 0.999,
64 labeled + 448 unlabeled) is the preset ``fixmatch-cifar10``.

FixMatch is also the step of the pseudo-labelling family that differs from it only in which
pseudo-labels it trusts and how much (FlexMatch, FreeMatch, SoftMatch, AdaMatch, Dash): they
override ``confidence_weights`` (and Dash ``unlabeled_targets``), and add terms through
``extra_loss``. Distribution alignment and debiasing (``dist_align``, ``debias``) are the shared
options of mentor.methods.alignment.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..options import POSITIVE, UNIT, WEIGHT
from ..registry import METHODS
from .base import Method, StepOutput, fused_forward


@METHODS.register("fixmatch")
class FixMatch(Method):
    name = "fixmatch"
    option_ranges = {"threshold": UNIT, "unlabeled_weight": WEIGHT, "temperature": POSITIVE}
    strong_view = "required"
    capturable = True  # one loss, no phase or ramp: the step is the same graph every time
    # The conformance suite trains a few steps only: no prediction reaches 0.95 by then.
    smoke_hparams = {"threshold": 0.0}
    makes_pseudo_labels = True

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

    # --- the rule, in parts the family overrides ----------------------------------------
    def confidence_weights(self, probs: torch.Tensor, batch, logits_l: torch.Tensor) -> torch.Tensor:
        """Per-example weight of the unlabeled loss: 1 where the pseudo-label is trusted."""
        return (probs.max(dim=-1).values >= self.threshold).float()

    def unlabeled_targets(self, probs: torch.Tensor) -> torch.Tensor:
        """What the strong view learns: the hard pseudo-label."""
        return probs.argmax(dim=-1)

    def pseudo_labels(self, logits_weak: torch.Tensor, logits_l: torch.Tensor, batch):
        """(q after the shared adjustment, per-example weights, targets), without gradient."""
        with torch.no_grad():
            probs = F.softmax(logits_weak.detach() / self.temperature, dim=-1)
            probs = self.adjust_pseudo_labels(probs, logits_l)
            return probs, self.confidence_weights(probs, batch, logits_l.detach()), self.unlabeled_targets(probs)

    def extra_loss(self, batch, logits_strong: torch.Tensor, weights: torch.Tensor, probs: torch.Tensor):
        """(loss, logs) of terms beyond FixMatch's, already weighted; none here."""
        return None, {}

    def loss(self, batch):
        logits_l, logits_weak, logits_strong = fused_forward(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_strong)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        probs, weights, targets = self.pseudo_labels(logits_weak, logits_l, batch)
        loss_u = (F.cross_entropy(logits_strong, targets, reduction="none") * weights).mean()
        loss = loss_l + self.unlabeled_weight * loss_u
        logs = {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "mask_rate": weights.mean()}
        extra, extra_logs = self.extra_loss(batch, logits_strong, weights, probs)
        if extra is not None:
            loss = loss + extra
            logs.update(extra_logs)
        return StepOutput(loss, logs)
