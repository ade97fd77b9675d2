"""CRMatch: FixMatch plus a feature-distance loss between weak and strong views and a rotation head.

Source: Fan, Kukleva, Dai & Schiele 2021, "Revisiting Consistency Regularization for
Semi-Supervised Learning" (GCPR; IJCV 2023), section 3 (REFERENCES.md "The newer pseudo-labelling
family"); USB's ``crmatch``. The paper finds that making features invariant to strong
augmentation hurts, and asks for consistent predictions with *distant* features:
loss = CE(y, f(x_l)) + L_u (FixMatch, tau 0.95, hard labels)
     + L_fd: mean 1(max q >= tau) max(0, cos(g(h(weak u)), g(h(strong u))))
       (cosine-embedding loss with target -1, as USB; g a linear head on the features h)
     + lambda_rot CE(r, rotation head(h(rot_r(u)))) over the four rotations of the first B_l weak
       unlabeled views (USB's RotNet batch; square images only, ``rotation_weight`` 1).
USB's g reads the flattened 8 x 8 feature map of a WRN; mentor reads every model's pooled
features (mentor.models.layers.features_and_logits), the form USB uses for its ViTs and BERTs.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers import feature_dim, projection_head
from ..options import WEIGHT
from ..registry import METHODS
from .base import StepOutput, fused_features_and_logits, head_per_view, upcast
from .fixmatch import FixMatch


def all_rotations(x: torch.Tensor):
    """(the images at 0, 90, 180 and 270 degrees, their rotation class 0..3)."""
    rotated = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])
    return rotated, torch.arange(4, device=x.device).repeat_interleave(len(x))


@METHODS.register("crmatch")
class CRMatch(FixMatch):
    name = "crmatch"
    option_ranges = {"rotation_weight": WEIGHT, "distance_weight": WEIGHT}
    capturable = False  # not yet checked against eager under --capture

    def __init__(self, model_factory, num_classes, seed=0, rotation_weight: float = 1.0,
                 distance_weight: float = 1.0, **options):
        super().__init__(model_factory, num_classes, seed, **options)
        self.rotation_weight, self.distance_weight = float(rotation_weight), float(distance_weight)
        model = self.models["model"]
        self.models["distance_head"] = nn.Linear(feature_dim(model), feature_dim(model))
        shape = self.input_shape
        self.rotates = rotation_weight > 0 and shape is not None and len(shape) == 3 and shape[1] == shape[2]
        if self.rotates:
            self.models["rotation_head"] = projection_head(model, 4)

    def configure_optimizers(self, make_optimizer):
        self.optimizers["model"] = make_optimizer(itertools.chain(*(m.parameters() for m in self.models.values())))

    def loss(self, batch):
        parts = [batch.x_l, batch.x_u, batch.x_u_strong]
        if self.rotates:
            rotated, rotation = all_rotations(batch.x_u[:len(batch.x_l)])
            parts.append(rotated)
        features, (logits_l, logits_weak, logits_strong, *_) = fused_features_and_logits(self.models["model"], *parts)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        probs, weights, targets = self.pseudo_labels(logits_weak, logits_l, batch)
        loss_u = (F.cross_entropy(logits_strong, targets, reduction="none") * weights).mean()
        distance_weak, distance_strong = head_per_view(self.models["distance_head"], features[1:3])
        cosine = F.cosine_similarity(distance_strong, distance_weak, dim=-1)
        loss_fd = (cosine.clamp_min(0.0) * weights).mean()
        loss = loss_l + self.unlabeled_weight * loss_u + self.distance_weight * loss_fd
        logs = {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "loss_distance": loss_fd.detach(),
                "mask_rate": weights.mean()}
        if self.rotates:
            rotation_logits = upcast(self.models["rotation_head"](features[3]))
            loss_rotation = F.cross_entropy(rotation_logits, rotation)
            loss = loss + self.rotation_weight * loss_rotation
            logs["loss_rotation"] = loss_rotation.detach()
        return StepOutput(loss, logs)
