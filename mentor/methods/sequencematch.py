"""SequenceMatch: a medium view between the weak and the strong one, the three chained by KL terms.

Source: Nguyen 2023, "SequenceMatch: Revisiting the design of weak-strong augmentations for
Semi-supervised learning" (WACV 2024), section 3 (REFERENCES.md "The newer pseudo-labelling
family"); USB's ``sequencematch``, which builds it on FlexMatch's per-class thresholds, as here.
With q_w, q_m the weak and medium views' predictions (no gradient), p_m, p_s the medium and strong
views' (with gradient), mask m = FlexMatch's, s(q) = q sharpened at T (0.5):
loss = CE(y, f(x_l)) + lambda_u mean m [CE(argmax q_w, p_s) + KL(s(q_w) || p_m) + KL(s(q_m) || p_s)
                                        + KL(s(q_w) || p_s)].
USB applies its softmax to probabilities (``softmax(probs / T)``), which flattens the targets
towards uniform; the sharpening here is the paper's, softmax(logits / T). The medium view
(mentor.augment.views ``medium``): half of RandAugment's ops and no Cutout for images, half the
strong noise for features, and for cached embeddings one of the cached weak or strong views.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import sharpen
from ..options import POSITIVE
from ..registry import METHODS
from .base import StepOutput, fused_forward
from .flexmatch import FlexMatch
from .refixmatch import kl_to


@METHODS.register("sequencematch")
class SequenceMatch(FlexMatch):
    name = "sequencematch"
    option_ranges = {"target_temperature": POSITIVE}
    medium_view = True

    def __init__(self, model_factory, num_classes, seed=0, target_temperature: float = 0.5, **options):
        super().__init__(model_factory, num_classes, seed, **options)
        self.target_temperature = float(target_temperature)

    def loss(self, batch):
        logits_l, logits_weak, logits_medium, logits_strong = fused_forward(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_medium, batch.x_u_strong)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        probs, weights, targets = self.pseudo_labels(logits_weak, logits_l, batch)
        with torch.no_grad():
            sharp_weak = sharpen(probs, self.target_temperature)
            sharp_medium = sharpen(F.softmax(logits_medium.detach(), dim=-1), self.target_temperature)
        loss_u = (F.cross_entropy(logits_strong, targets, reduction="none") * weights).mean()
        loss_kl = ((kl_to(sharp_weak, logits_medium) + kl_to(sharp_medium, logits_strong)
                    + kl_to(sharp_weak, logits_strong)) * weights).mean()
        loss = loss_l + self.unlabeled_weight * (loss_u + loss_kl)
        return StepOutput(loss, {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "loss_kl": loss_kl.detach(),
                                 "mask_rate": weights.mean()})
