"""VAT, Virtual Adversarial Training: predictions must resist the most damaging small perturbation.

Source: Miyato et al. 2018 (survey seed, consistency section; REFERENCES.md "Other methods").
For each input x (labeled and unlabeled alike):
  d ~ N(0, I), normalised per example; repeat ``power_iterations`` times:
      d <- normalise(grad_d KL(p(x) || p(x + xi d)))      (power iteration for the top direction)
  r_adv = epsilon * d;  cost_u = KL(p(x) || p(x + r_adv)), p(x) held fixed (no gradient).
Total: CE on labeled + unlabeled_weight * cost_u (+ entropy_weight * entropy of p on unlabeled
data: "VAT + EntMin"). Paper defaults for CIFAR-10: epsilon 6.0 (on ZCA-whitened inputs),
one power iteration, weight 1. The paper's xi is 1e-6; in float32 the logits at x + 1e-6 d are
often bitwise equal to the clean ones, the gradient is exactly zero and the "adversarial"
direction is lost, so the default here is 1e-3 (still small against epsilon, so the same
direction to first order); an example whose gradient is still zero keeps its random direction. The perturbation passes do not update batch-norm
running statistics (momentum set to 0 for them), so adversarial inputs do not leak into
evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import entropy, kl_divergence
from ..models.layers import frozen_bn_statistics
from ..options import COUNT, POSITIVE, WEIGHT
from ..registry import METHODS
from .base import Method, StepOutput


def _norms(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1)))


def _normalise(d: torch.Tensor) -> torch.Tensor:
    return d / _norms(d).clamp_min(1e-30)


@METHODS.register("vat")
class VAT(Method):
    name = "vat"
    option_ranges = {"epsilon": POSITIVE, "xi": POSITIVE, "power_iterations": COUNT, "unlabeled_weight": WEIGHT,
                     "entropy_weight": WEIGHT}
    strong_view = "unused"

    def __init__(self, model_factory, num_classes, seed=0, epsilon: float = 6.0, xi: float = 1e-3,
                 power_iterations: int = 1, unlabeled_weight: float = 1.0, entropy_weight: float = 0.0):
        super().__init__(model_factory, num_classes, seed)
        if epsilon <= 0 or xi <= 0:
            raise ConfigError(f"epsilon and xi must be positive, got {epsilon} and {xi}")
        if power_iterations < 1:
            raise ConfigError(f"power_iterations must be >= 1, got {power_iterations}")
        self.epsilon, self.xi, self.power_iterations = epsilon, xi, power_iterations
        self.unlabeled_weight, self.entropy_weight = unlabeled_weight, entropy_weight
        self.models["model"] = model_factory()

    def adversarial_direction(self, x: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
        model = self.models["model"]
        d = _normalise(torch.randn(x.shape, generator=self.generator).to(x.device, x.dtype))
        for _ in range(self.power_iterations):
            d.requires_grad_(True)
            divergence = kl_divergence(clean_logits, model(x + self.xi * d))
            (grad,) = torch.autograd.grad(divergence, d)
            grad = grad.detach()
            d = torch.where(_norms(grad) > 0, _normalise(grad), d.detach())
        return d

    def loss(self, batch):
        model = self.models["model"]
        n_l = len(batch.x_l)
        x = torch.cat([batch.x_l, batch.x_u])
        logits = model(x).float()
        loss_l = F.cross_entropy(logits[:n_l], batch.y_l)
        clean = logits.detach()
        with frozen_bn_statistics(model):
            r_adv = self.epsilon * self.adversarial_direction(x, clean)
            loss_u = kl_divergence(clean, model(x + r_adv))
        loss = loss_l + self.unlabeled_weight * loss_u
        logs = {"loss_l": loss_l.detach(), "loss_u": loss_u.detach()}
        if self.entropy_weight:
            ent = entropy(logits[n_l:])
            loss = loss + self.entropy_weight * ent
            logs["entropy"] = ent.detach()
        return StepOutput(loss, logs)
