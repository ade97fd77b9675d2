"""ReFixMatch: FixMatch whose low-confidence predictions teach too, through a KL term.

Source: Nguyen & Le 2023, "Boosting Semi-Supervised Learning by bridging high and low-confidence
predictions" (ICCV workshops), section 3 (REFERENCES.md "The newer pseudo-labelling family").
FixMatch discards every prediction under tau; ReFixMatch keeps learning from them:
loss = CE(y, f(x_l)) + lambda_u [mean 1(max q >= tau) CE(argmax q, f(strong u))
                                 + mean w_kl KL(q || softmax f(strong u))],
q the weak view's prediction (no gradient), tau 0.95. ``kl_on`` chooses w_kl: ``unconfident``
(1(max q < tau): the paper's aim, the predictions FixMatch throws away; the default), ``all``, or
``confident`` (USB's ``refixmatch`` masks the KL term with FixMatch's mask, which learns nothing
from the low-confidence predictions; kept for comparison).
"""
from __future__ import annotations

import torch.nn.functional as F

from ..errors import ConfigError
from ..options import Choice
from ..registry import METHODS
from .fixmatch import FixMatch

KL_ON = ("unconfident", "all", "confident")


def kl_to(target_probs, logits):
    """KL(target || softmax(logits)) per example."""
    target = target_probs.clamp_min(1e-12)
    return (target * (target.log() - F.log_softmax(logits, dim=-1))).sum(-1)


@METHODS.register("refixmatch")
class ReFixMatch(FixMatch):
    name = "refixmatch"
    option_ranges = {"kl_on": Choice(*KL_ON)}
    capturable = False  # not yet checked against eager under --capture

    def __init__(self, model_factory, num_classes, seed=0, kl_on: str = "unconfident", **options):
        super().__init__(model_factory, num_classes, seed, **options)
        if kl_on not in KL_ON:
            raise ConfigError(f"unknown kl_on {kl_on!r}; choose one of {', '.join(KL_ON)}")
        self.kl_on = kl_on

    def extra_loss(self, batch, logits_strong, weights, probs):
        kl_weights = {"unconfident": 1.0 - weights, "all": weights.new_ones(weights.shape),
                      "confident": weights}[self.kl_on]
        loss_kl = (kl_to(probs, logits_strong) * kl_weights).mean()
        return self.unlabeled_weight * loss_kl, {"loss_kl": loss_kl.detach()}
