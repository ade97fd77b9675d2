"""Loss functions shared by the methods. Pure functions of tensors."""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CE(target, softmax(logits)) for target distributions of shape (B, C)."""
    per_sample = -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    if reduction == "none":
        return per_sample
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def uda_consistency(logits_weak: torch.Tensor, logits_strong: torch.Tensor, temperature: float,
                    threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """UDA's unsupervised term (REFERENCES.md, "FixMatch and UDA"; MPL Algorithm 1).

    q = stopgrad(softmax(logits_weak / temperature)); examples whose max q is below the
    threshold are masked out; loss = mean over the whole batch of mask * CE(q, strong).
    Returns (loss, fraction of the batch kept).
    """
    with torch.no_grad():
        q = F.softmax(logits_weak.float() / temperature, dim=-1)
        mask = (q.max(dim=-1).values >= threshold).float()
    loss = (soft_cross_entropy(logits_strong.float(), q, reduction="none") * mask).mean()
    return loss, mask.mean()


def linear_ramp(step: int, ramp_steps: int) -> float:
    """0 -> 1 linearly over ramp_steps (1 at once when ramp_steps is 0)."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, step / ramp_steps)


def sigmoid_rampup(step: int, ramp_steps: int) -> float:
    """exp(-5 (1 - x)^2) for x = step / ramp_steps in [0, 1] (Laine & Aila; Mean Teacher): starts at
    exp(-5) = 0.0067 and reaches 1 at ramp_steps (1 at once when ramp_steps is 0)."""
    if ramp_steps <= 0:
        return 1.0
    x = min(1.0, max(0.0, step / ramp_steps))
    return math.exp(-5.0 * (1.0 - x) ** 2)


def softmax_mse(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over batch and classes of (softmax(logits) - target)^2: the consistency cost of the
    Pi-model, Temporal Ensembling, Mean Teacher and ICT (Mean Teacher found it beats KL).
    Mean Teacher's published weights (e.g. 100) are for this per-class mean."""
    return ((F.softmax(logits.float(), dim=-1) - target_probs.float()) ** 2).mean()


def kl_divergence(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(target_logits) || softmax(logits)), summed over classes, mean over the batch."""
    target_log = F.log_softmax(target_logits.float(), dim=-1)
    return (target_log.exp() * (target_log - F.log_softmax(logits.float(), dim=-1))).sum(-1).mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the predicted distributions (entropy minimisation, VAT + EntMin)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """MixMatch's Sharpen: p_i^(1/T) / sum_j p_j^(1/T) (T -> 0: one-hot). On a softmax this is
    the softmax of the logits divided by T."""
    powered = probs.float().clamp_min(1e-12) ** (1.0 / temperature)
    return powered / powered.sum(dim=-1, keepdim=True)
