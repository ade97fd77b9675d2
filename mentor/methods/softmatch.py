"""SoftMatch: every pseudo-label weighted by a truncated Gaussian of its confidence, after
uniform alignment.

Source: Chen et al. 2023, "SoftMatch: Addressing the Quantity-Quality Trade-off in
Semi-supervised Learning" (ICLR), section 3 (REFERENCES.md "The newer pseudo-labelling family").
- Uniform alignment (section 3.3): q <- Normalize(q x u / p~), u uniform, p~ an EMA of the mean q:
  the shared ``dist_align=uniform`` with ``dist_align_window=0`` (EMA), SoftMatch's default here
  (``dist_align=none`` turns it off).
- Weight (eq. 7): lambda(p) = exp(-(max q - mu_t)^2 / (2 sigma_t^2 / n^2)) where max q < mu_t, and
  1 above, with mu_t and sigma_t^2 EMAs (``momentum``, mu_0 = 1/C, sigma_0^2 = 1) of the batch's
  mean and unbiased variance of max q, updated with each batch before it is weighted (USB's
  order); n = ``n_sigma`` = 2 (USB's default: the Gaussian's width is sigma_t / 2).
Hard pseudo-labels, lambda_u 1 (USB ``softmatch_cifar10``). Both EMAs default to momentum 0.99, not
the paper's 0.999 (about 1,000 steps of memory: a whole run of mentor's CPU budgets, in which the
weights stay near 1 and the alignment too slow to stop an early collapse): on validation folds
(bench/compare.py family-ema-*), SST-2-20 70.0 against 50.0 (0.999: one class), digits-50 84.0
against 80.0. Under torchrun the mean and variance
are over the global batch (from the ranks' sums of max q and max q^2).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..options import MOMENTUM, POSITIVE, WEIGHT
from ..registry import METHODS
from .fixmatch import FixMatch


def batch_moments(confidence: torch.Tensor, collective):
    """(mean, unbiased variance) of the global batch's confidences."""
    sums = collective.mean(torch.stack([confidence.sum(), (confidence ** 2).sum(),
                                        torch.tensor(float(len(confidence)), device=confidence.device)]))
    total, total_sq, n = sums * collective.world
    mean = total / n
    variance = (total_sq - n * mean ** 2) / (n - 1).clamp_min(1.0)
    return mean, variance.clamp_min(0.0)


def truncated_gaussian(confidence: torch.Tensor, mu: torch.Tensor, variance: torch.Tensor, n_sigma: float):
    return torch.exp(-(torch.clamp(confidence - mu, max=0.0) ** 2) / (2 * variance / n_sigma ** 2))


@METHODS.register("softmatch")
class SoftMatch(FixMatch):
    name = "softmatch"
    option_ranges = {"momentum": MOMENTUM, "n_sigma": POSITIVE, "unlabeled_weight": WEIGHT}
    capturable = False
    smoke_hparams = {}  # a soft weight: every example contributes from the first step
    pseudo_label_defaults = {"dist_align": "uniform", "dist_align_window": 0, "dist_align_momentum": 0.99}

    def __init__(self, model_factory, num_classes, seed=0, momentum: float = 0.99, n_sigma: float = 2.0,
                 unlabeled_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed, threshold=0.0, unlabeled_weight=unlabeled_weight)
        if n_sigma <= 0:
            raise ConfigError(f"n_sigma must be positive, got {n_sigma}")
        if not 0 <= momentum < 1:
            raise ConfigError(f"softmatch's momentum must be in [0, 1), got {momentum}")
        self.momentum, self.n_sigma = float(momentum), float(n_sigma)
        self.mu, self.variance = torch.tensor(1.0 / num_classes), torch.tensor(1.0)

    def confidence_weights(self, probs, batch, logits_l):
        confidence = probs.max(dim=-1).values
        mean, variance = batch_moments(confidence, self.collective)
        m = self.momentum
        self.mu = m * self.mu.to(probs.device) + (1 - m) * mean
        self.variance = m * self.variance.to(probs.device) + (1 - m) * variance
        return truncated_gaussian(confidence, self.mu, self.variance, self.n_sigma)

    def extra_state(self):
        return {"mu": self.mu.cpu(), "variance": self.variance.cpu()}

    def load_extra_state(self, state):
        self.mu, self.variance = state["mu"], state["variance"]
