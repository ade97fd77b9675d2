"""SimMatch: pseudo-labels from a labeled memory bank as well as from the classifier.

Source: Zheng et al. 2022, "SimMatch: Semi-supervised Learning with Similarity Matching" (CVPR),
section 3 (REFERENCES.md "The newer pseudo-labelling family"); defaults as USB's ``simmatch``.
State: a bank of every labeled example's projected, L2-normalised features z_k (``proj_dim`` 128;
a two-layer projection head on the model's features) with its label y_k. Per step, with q the
weak view's prediction after the shared alignment (SimMatch's default: uniform, over the last 32
batches, USB's ``da_len``) and z_w, z_s the weak and strong views' projections:
- instance similarities to the bank: t = softmax(z_w . z_k / T), s = softmax(z_s . z_k / T), T 0.1;
- label unfolding (eq. 6): t^_k = t_k q(y_k) / sum_j t_j q(y_j) (the bank's instance pseudo-label,
  calibrated by the classifier);
- label aggregation (eq. 7): q^ = alpha q + (1 - alpha) sum_k t_k onehot(y_k), alpha 0.9;
- loss = CE(y, f(x_l)) + lambda_u mean 1(max q^ >= tau) CE(q^, f(strong u)) (soft targets, tau
  0.95) + lambda_in mean CE(t^, s) (lambda_in 1);
- then the labeled batch's projections enter the bank, z_k <- Normalize(0.7 z_k + 0.3 z_new)
  (USB's ``ema_bank`` for a bank of the model's own features, no EMA teacher), with labels.
The bank starts as random unit vectors (seeded) with the labeled set's labels; it has one entry per
labeled example (USB repeats small labeled sets to a longer bank; mentor does not). Under torchrun
the global labeled batch's projections enter every rank's bank, so the banks stay equal.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import soft_cross_entropy
from ..models.layers import projection_head
from ..options import COUNT, MOMENTUM, POSITIVE, UNIT, WEIGHT
from ..registry import METHODS
from .base import Method, StepOutput, fused_features_and_logits, head_per_view


def unfold_and_aggregate(probs, weak_similarity, bank_labels, temperature: float, alpha: float):
    """(unfolded instance pseudo-label t^ (B, K), aggregated class pseudo-label q^ (B, C))."""
    t = F.softmax(weak_similarity / temperature, dim=-1)
    labels = bank_labels[None].expand(len(t), -1)
    unfolded = t * probs.gather(1, labels)
    unfolded = unfolded / unfolded.sum(-1, keepdim=True).clamp_min(1e-12)
    aggregated = torch.zeros_like(probs).scatter_add(1, labels, t)
    return unfolded, alpha * probs + (1 - alpha) * aggregated


@METHODS.register("simmatch")
class SimMatch(Method):
    name = "simmatch"
    option_ranges = {"threshold": UNIT, "temperature": POSITIVE, "alpha": UNIT, "proj_dim": COUNT,
                     "bank_momentum": MOMENTUM, "unlabeled_weight": WEIGHT, "instance_weight": WEIGHT}
    strong_view = "required"
    makes_pseudo_labels = True
    pseudo_label_defaults = {"dist_align": "uniform", "dist_align_window": 32}
    smoke_hparams = {"threshold": 0.0}

    def __init__(self, model_factory, num_classes, seed=0, threshold: float = 0.95, temperature: float = 0.1,
                 alpha: float = 0.9, proj_dim: int = 128, bank_momentum: float = 0.7, unlabeled_weight: float = 1.0,
                 instance_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed)
        if temperature <= 0 or not 0 <= alpha <= 1 or not 0 <= bank_momentum < 1 or int(proj_dim) < 1:
            raise ConfigError("simmatch needs temperature > 0, alpha in [0, 1], bank_momentum in [0, 1), proj_dim >= 1; "
                              f"got {temperature}, {alpha}, {bank_momentum}, {proj_dim}")
        self.threshold, self.temperature, self.alpha = float(threshold), float(temperature), float(alpha)
        self.proj_dim, self.bank_momentum = int(proj_dim), float(bank_momentum)
        self.unlabeled_weight, self.instance_weight = float(unlabeled_weight), float(instance_weight)
        self.models["model"] = model_factory()
        self.models["projection"] = projection_head(self.models["model"], self.proj_dim)
        self.bank = None  # (K, proj_dim) unit rows, one per labeled example
        self.bank_labels = None

    def configure_optimizers(self, make_optimizer):
        self.optimizers["model"] = make_optimizer(itertools.chain(*(m.parameters() for m in self.models.values())))

    def _init_bank(self, device):
        if self.labeled_pool is None:
            raise ConfigError("simmatch keeps a bank of the labeled set's features; set method.labeled_pool "
                              "(the Trainer does)")
        labels = self.labeled_pool.y
        self.bank = F.normalize(torch.randn(len(labels), self.proj_dim, generator=self.generator), dim=-1).to(device)
        self.bank_labels = labels.to(device).long().clone()

    def update_bank(self, projections, idx, labels):
        projections, idx = self.collective.all_gather(projections), self.collective.all_gather(idx)
        labels = self.collective.all_gather(labels)
        m = self.bank_momentum
        self.bank[idx] = F.normalize(m * self.bank[idx] + (1 - m) * projections, dim=-1)
        self.bank_labels[idx] = labels

    def loss(self, batch):
        features, (logits_l, logits_weak, logits_strong) = fused_features_and_logits(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_strong)
        z_l, z_w, z_s = (F.normalize(z, dim=-1) for z in head_per_view(self.models["projection"], features))
        if self.bank is None:
            self._init_bank(z_l.device)
        bank = self.bank.clone()  # the bank is updated below, before the backward pass reads it
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        with torch.no_grad():
            probs = F.softmax(logits_weak.detach(), dim=-1)
            probs = self.adjust_pseudo_labels(probs, logits_l)
            unfolded, targets = unfold_and_aggregate(probs, z_w.detach() @ bank.T, self.bank_labels,
                                                     self.temperature, self.alpha)
            mask = (targets.max(dim=-1).values >= self.threshold).float()
        student = F.log_softmax(z_s @ bank.T / self.temperature, dim=-1)
        loss_in = -(unfolded * student).sum(-1).mean()
        loss_u = (soft_cross_entropy(logits_strong, targets, reduction="none") * mask).mean()
        loss = loss_l + self.unlabeled_weight * loss_u + self.instance_weight * loss_in
        with torch.no_grad():
            self.update_bank(z_l.detach(), batch.idx_l.to(z_l.device), batch.y_l)
        return StepOutput(loss, {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "loss_in": loss_in.detach(),
                                 "mask_rate": mask.mean()})

    def extra_state(self):
        return {"bank": None if self.bank is None else self.bank.cpu(),
                "bank_labels": None if self.bank_labels is None else self.bank_labels.cpu()}

    def load_extra_state(self, state):
        device = next(self.models.parameters()).device
        self.bank = None if state["bank"] is None else state["bank"].to(device)
        self.bank_labels = None if state["bank_labels"] is None else state["bank_labels"].to(device)
