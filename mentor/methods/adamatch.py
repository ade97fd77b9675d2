"""AdaMatch: a threshold relative to the labeled batch's confidence, and distribution alignment to
the model's predictions on labeled data.

Source: Berthelot et al. 2022, "AdaMatch: A Unified Approach to Semi-Supervised Learning and Domain
Adaptation" (ICLR), section 3 (REFERENCES.md "The newer pseudo-labelling family"), in its SSL form
(one domain: no random logit interpolation, no separate batch-norm statistics, as USB).
- Distribution alignment (section 3.2): q <- Normalize(q x p_l / p~), p_l and p~ EMAs of the mean
  prediction on the labeled and the unlabeled weak views: the shared
  ``dist_align=labeled_predictions`` with ``dist_align_window=0``, AdaMatch's default here, with
  momentum 0.99 (USB: 0.999, about 1,000 steps of memory, a whole run of mentor's CPU budgets; on
  validation folds, bench/compare.py family-ema-*: SST-2-20 60.0 against 50.0, digits-50 86.0
  against 82.0).
- Relative threshold (section 3.3): c_tau = tau x mean over the labeled batch of max softmax(f(x_l));
  an example is trusted when max q >= c_tau, tau = 0.9 (the paper's; USB's config uses 0.95).
- Hard pseudo-labels and lambda_u 1, as USB (the paper also ramps lambda_u in; ``--hp
  unlabeled_weight`` sets it, mentor's trainer has no per-method ramp here).
Under torchrun the labeled batch's mean confidence and both marginals are global means.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import METHODS
from .fixmatch import FixMatch


def relative_threshold(logits_l: torch.Tensor, tau: float, collective) -> torch.Tensor:
    confidence = F.softmax(logits_l.float(), dim=-1).max(dim=-1).values
    return tau * collective.mean(confidence.mean())


@METHODS.register("adamatch")
class AdaMatch(FixMatch):
    name = "adamatch"
    capturable = False
    smoke_hparams = {"threshold": 0.0}
    pseudo_label_defaults = {"dist_align": "labeled_predictions", "dist_align_window": 0, "dist_align_momentum": 0.99}

    def __init__(self, model_factory, num_classes, seed=0, threshold: float = 0.9, **options):
        super().__init__(model_factory, num_classes, seed, threshold=threshold, **options)

    def confidence_weights(self, probs, batch, logits_l):
        cutoff = relative_threshold(logits_l, self.threshold, self.collective)
        return (probs.max(dim=-1).values >= cutoff).float()
