"""CoMatch: memory-smoothed pseudo-labels and a graph-contrastive loss on projected embeddings.

Source: Li, Xiong & Hoi 2021, "CoMatch: Semi-supervised Learning with Contrastive Graph
Regularization" (ICCV), section 3 (REFERENCES.md "The newer pseudo-labelling family"); defaults
as USB's ``comatch``. State: a queue of the last ``queue_batches`` (5) global batches' weak
embeddings (labeled and unlabeled) with their class distributions (one-hot for labeled ones).
Per step, q the weak view's prediction after the shared alignment (CoMatch's default: uniform,
over the last 32 batches) and z the projections (``proj_dim`` 64, unit length):
- memory smoothing, once the queue is full: q <- alpha q + (1 - alpha) sum_j a_j q_j,
  a = softmax(z_w . z_j / T) over the queue, alpha 0.9, T 0.2;
- pseudo-label graph W = q q^T with self-loops 1, edges under ``contrast_threshold`` (0.8) cut,
  rows normalised; embedding graph: softmax over the batch of z_s1 . z_s2 / T for two strong views;
- loss = CE(y, f(x_l)) + lambda_u mean 1(max q >= tau) CE(q, f(strong u)) (soft, tau 0.95)
  + lambda_c mean_i -sum_j W_ij log S_ij (lambda_c 1).
- the weak embeddings and the unsmoothed q (one-hot labels for labeled examples) enter the queue.
The second strong view is drawn here from the unlabeled pool with the method's device generator.
Under torchrun the queue holds the global batch on every rank; the contrastive graph is over each
rank's own batch (as USB, which builds it per GPU).
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import soft_cross_entropy
from ..models.layers import projection_head
from ..options import COUNT, POSITIVE, UNIT, WEIGHT
from ..registry import METHODS
from .base import Method, StepOutput, fused_features_and_logits, head_per_view


def smooth_with_memory(probs, z_weak, queue_z, queue_probs, temperature: float, alpha: float):
    affinity = F.softmax(z_weak @ queue_z.T / temperature, dim=-1)
    return alpha * probs + (1 - alpha) * affinity @ queue_probs


def pseudo_label_graph(probs, threshold: float):
    graph = probs @ probs.T
    graph.fill_diagonal_(1.0)
    graph = graph * (graph >= threshold).float()
    return graph / graph.sum(-1, keepdim=True)


def graph_contrastive_loss(z_a, z_b, graph, temperature: float):
    log_similarity = F.log_softmax(z_a @ z_b.T / temperature, dim=-1)
    return -(graph * log_similarity).sum(-1).mean()


@METHODS.register("comatch")
class CoMatch(Method):
    name = "comatch"
    option_ranges = {"threshold": UNIT, "contrast_threshold": UNIT, "temperature": POSITIVE, "alpha": UNIT,
                     "proj_dim": COUNT, "queue_batches": COUNT, "unlabeled_weight": WEIGHT, "contrast_weight": WEIGHT}
    strong_view = "required"
    makes_pseudo_labels = True
    pseudo_label_defaults = {"dist_align": "uniform", "dist_align_window": 32}
    smoke_hparams = {"threshold": 0.0, "queue_batches": 1}
    view_seed_offset = 29

    def __init__(self, model_factory, num_classes, seed=0, threshold: float = 0.95, contrast_threshold: float = 0.8,
                 temperature: float = 0.2, alpha: float = 0.9, proj_dim: int = 64, queue_batches: int = 5,
                 unlabeled_weight: float = 1.0, contrast_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed)
        if temperature <= 0 or not 0 <= alpha <= 1 or int(queue_batches) < 1 or int(proj_dim) < 1:
            raise ConfigError(f"comatch needs temperature > 0, alpha in [0, 1], queue_batches >= 1, proj_dim >= 1; "
                              f"got {temperature}, {alpha}, {queue_batches}, {proj_dim}")
        self.threshold, self.contrast_threshold = float(threshold), float(contrast_threshold)
        self.temperature, self.alpha, self.proj_dim = float(temperature), float(alpha), int(proj_dim)
        self.queue_batches = int(queue_batches)
        self.unlabeled_weight, self.contrast_weight = float(unlabeled_weight), float(contrast_weight)
        self.models["model"] = model_factory()
        self.models["projection"] = projection_head(self.models["model"], self.proj_dim)
        self.queue_z = torch.empty(0, self.proj_dim)
        self.queue_probs = torch.empty(0, num_classes)

    def configure_optimizers(self, make_optimizer):
        self.optimizers["model"] = make_optimizer(itertools.chain(*(m.parameters() for m in self.models.values())))

    def loss(self, batch):
        strong_2 = self.draw_strong_view(batch)
        features, (logits_l, logits_weak, logits_strong, _) = fused_features_and_logits(
            self.models["model"], batch.x_l, batch.x_u, batch.x_u_strong, strong_2)
        z_l, z_w, z_s1, z_s2 = (F.normalize(z, dim=-1) for z in head_per_view(self.models["projection"], features))
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        with torch.no_grad():
            probs = self.adjust_pseudo_labels(F.softmax(logits_weak.detach(), dim=-1), logits_l)
            unsmoothed = probs
            queue_length = self.queue_batches * (len(z_l) + len(z_w)) * self.collective.world
            if len(self.queue_z) >= queue_length:
                probs = smooth_with_memory(probs, z_w.detach(), self.queue_z.to(z_w.device),
                                           self.queue_probs.to(z_w.device), self.temperature, self.alpha)
            mask = (probs.max(dim=-1).values >= self.threshold).float()
            graph = pseudo_label_graph(probs, self.contrast_threshold)
            entering_z = self.collective.all_gather(torch.cat([z_w.detach(), z_l.detach()]))
            entering_p = self.collective.all_gather(
                torch.cat([unsmoothed, F.one_hot(batch.y_l, self.num_classes).float()]))
            self.queue_z = torch.cat([self.queue_z.to(z_w.device), entering_z])[-queue_length:]
            self.queue_probs = torch.cat([self.queue_probs.to(z_w.device), entering_p])[-queue_length:]
        loss_u = (soft_cross_entropy(logits_strong, probs, reduction="none") * mask).mean()
        loss_c = graph_contrastive_loss(z_s1, z_s2, graph, self.temperature)
        loss = loss_l + self.unlabeled_weight * loss_u + self.contrast_weight * loss_c
        return StepOutput(loss, {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "loss_contrast": loss_c.detach(),
                                 "mask_rate": mask.mean()})

    def extra_state(self):
        return {"queue_z": self.queue_z.cpu(), "queue_probs": self.queue_probs.cpu()}

    def load_extra_state(self, state):
        self.queue_z, self.queue_probs = state["queue_z"], state["queue_probs"]
