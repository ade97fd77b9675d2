"""FreeMatch: self-adaptive thresholds and the self-adaptive fairness loss.

Source: Wang et al. 2023, "FreeMatch: Self-adaptive Thresholding for Semi-supervised Learning"
(ICLR), section 3 (REFERENCES.md "The newer pseudo-labelling family"). State, EMAs of momentum
lambda over the weak view's q, updated with each batch before it is masked (as USB):
- global threshold tau_t = lambda tau_{t-1} + (1 - lambda) mean_b max q_b, tau_0 = 1/C (eq. 4);
- local p~_t = lambda p~_{t-1} + (1 - lambda) mean_b q_b, p~_0 = 1/C (eq. 5);
- an example is trusted when max q >= tau_t p~_t(c) / max_c p~_t(c), c = argmax q (eq. 6);
- the histogram h~_t of the pseudo-labels, an EMA the same way (h~_0 = 1/C).
Fairness loss (eq. 8-10), weight ``fairness_weight`` (USB's ``ent_loss_ratio``, 0.01):
L_f = -H(SumNorm(p~_t / h~_t), SumNorm(p_bar / h_bar)) = sum_c a_c log b_c, with p_bar the mean
prediction of the strong views of the trusted examples and h_bar the histogram of their argmax.
As in the paper and USB, it is minimised with this sign. Hard pseudo-labels (the paper's).
Default ``momentum`` 0.99, not the paper's 0.999: an EMA of 0.999 remembers about 1,000 steps, a
whole run of mentor's CPU budgets (the paper's runs are 2^20 steps), so the thresholds stay near
their start 1/C while early, biased predictions pass them. On validation folds (bench/compare.py
family-ema-*, BENCHMARKS.md "The modern pseudo-labelling family"), 0.99 against 0.999: SST-2-20
60.0 against 50.0 (0.999 collapsed to one class), digits-50 86.0 against 82.0.
Under torchrun every statistic is over the global batch: the EMAs through means over the ranks, and
p_bar and h_bar of the fairness loss over every rank's trusted examples, with each rank's
gradient scaled so that the averaged gradient is the global loss's (USB computes it per GPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..options import MOMENTUM, WEIGHT
from ..registry import METHODS
from .fixmatch import FixMatch


def freematch_update(state: dict, probs: torch.Tensor, momentum: float, collective) -> dict:
    """The EMAs after one batch of weak-view probabilities (``state``: time_p, p_model, label_hist)."""
    confidence, predicted = probs.max(dim=-1)
    hist = F.one_hot(predicted, probs.shape[-1]).float().mean(0)
    means = collective.mean(torch.cat([confidence.mean()[None], probs.mean(0), hist]))
    c = probs.shape[-1]
    return {"time_p": momentum * state["time_p"] + (1 - momentum) * means[0],
            "p_model": momentum * state["p_model"] + (1 - momentum) * means[1:1 + c],
            "label_hist": momentum * state["label_hist"] + (1 - momentum) * means[1 + c:]}


def freematch_mask(probs: torch.Tensor, state: dict) -> torch.Tensor:
    confidence, predicted = probs.max(dim=-1)
    local = state["p_model"] / state["p_model"].max()
    return (confidence >= state["time_p"] * local[predicted]).float()


def fairness_loss(logits_strong: torch.Tensor, mask: torch.Tensor, p_model: torch.Tensor,
                  label_hist: torch.Tensor, collective) -> torch.Tensor:
    """FreeMatch's L_f over the trusted examples of the global batch (0 when there are none)."""
    c = logits_strong.shape[-1]
    probs = F.softmax(logits_strong.float(), dim=-1)
    mask = mask.detach()
    local_sum = (probs * mask[:, None]).sum(0)
    with torch.no_grad():
        hist_local = (F.one_hot(probs.argmax(-1), c).float() * mask[:, None]).sum(0)
        totals = collective.mean(torch.cat([local_sum.detach(), hist_local, mask.sum()[None]])) * collective.world
        global_sum, hist, count = totals[:c], totals[c:2 * c], totals[2 * c]
    # The value is the global mean; the gradient flows through this rank's examples only.
    mean_prob = (local_sum + (global_sum - local_sum.detach())) / count.clamp_min(1.0)
    hist = hist / count.clamp_min(1.0)

    def sum_norm(x):
        return x / x.sum().clamp_min(1e-12)

    inverse = lambda h: torch.where(h > 0, 1.0 / h.clamp_min(1e-12), torch.zeros_like(h))  # noqa: E731
    target = sum_norm(p_model * inverse(label_hist))
    loss = (target * torch.log(sum_norm(mean_prob * inverse(hist)) + 1e-12)).sum()
    # ranks' gradients are averaged: scale this rank's so that their mean is the global gradient
    loss = loss + (collective.world - 1) * (loss - loss.detach())
    return loss * (count > 0).float()


@METHODS.register("freematch")
class FreeMatch(FixMatch):
    name = "freematch"
    option_ranges = {"momentum": MOMENTUM, "fairness_weight": WEIGHT, "unlabeled_weight": WEIGHT}
    capturable = False
    smoke_hparams = {}  # tau_0 = 1/C: the unlabeled term is active from the first step

    def __init__(self, model_factory, num_classes, seed=0, momentum: float = 0.99, fairness_weight: float = 0.01,
                 unlabeled_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed, threshold=0.0, unlabeled_weight=unlabeled_weight)
        if not 0 <= momentum < 1:
            raise ConfigError(f"freematch's momentum must be in [0, 1), got {momentum}")
        self.momentum, self.fairness_weight = float(momentum), float(fairness_weight)
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.statistics = {"time_p": torch.tensor(1.0 / num_classes), "p_model": uniform.clone(),
                           "label_hist": uniform.clone()}

    def confidence_weights(self, probs, batch, logits_l):
        state = {k: v.to(probs.device) for k, v in self.statistics.items()}
        self.statistics = freematch_update(state, probs, self.momentum, self.collective)
        return freematch_mask(probs, self.statistics)

    def extra_loss(self, batch, logits_strong, weights, probs):
        if self.fairness_weight == 0:
            return None, {}
        loss_f = fairness_loss(logits_strong, weights, self.statistics["p_model"], self.statistics["label_hist"],
                               self.collective)
        return self.fairness_weight * loss_f, {"loss_fairness": loss_f.detach(),
                                               "threshold": self.statistics["time_p"].detach()}

    def extra_state(self):
        return {k: v.cpu() for k, v in self.statistics.items()}

    def load_extra_state(self, state):
        self.statistics = dict(state)
