"""ICT, Interpolation Consistency Training: the prediction at a mixup of two unlabeled inputs
must match the mixup of the mean teacher's predictions at them.

Source: Verma et al. 2019 (survey seed, consistency section; REFERENCES.md "Other methods").
Per step: lam ~ Beta(alpha, alpha) (alpha = 1.0 on CIFAR-10), a random pairing of the
unlabeled batch, u_mix = lam u_i + (1 - lam) u_j and target = lam T(u_i) + (1 - lam) T(u_j)
with T the softmax of an EMA ("mean") teacher of the student (decay min(1 - 1/(t+1), 0.999)).
Cost: CE on labeled + w(t) * MSE(softmax(S(u_mix)), target), w ramped by exp(-5 (1 - t/ramp)^2).
The teacher is evaluated too (``teacher_test_accuracy``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..augment import mixup
from ..errors import check_unit_interval
from ..losses import softmax_mse
from ..options import MOMENTUM, POSITIVE, STEPS, WEIGHT
from ..registry import METHODS
from .base import StepOutput, fused_forward
from .consistency import EMATeacherMethod, make_teacher


@METHODS.register("ict")
class ICT(EMATeacherMethod):
    name = "ict"
    option_ranges = {"mixup_alpha": POSITIVE, "consistency_weight": WEIGHT, "ramp_steps": STEPS, "ema_decay": MOMENTUM}
    strong_view = "unused"

    def __init__(self, model_factory, num_classes, seed=0, mixup_alpha: float = 1.0,
                 consistency_weight: float = 100.0, ramp_steps: Optional[int] = None, ema_decay: float = 0.999):
        super().__init__(model_factory, num_classes, seed)
        check_unit_interval("ema_decay", ema_decay)
        self.mixup_alpha = mixup_alpha
        self.consistency_weight = consistency_weight
        self.ramp_steps = ramp_steps
        self.ema_decay = ema_decay
        self.models["model"] = model_factory()
        self.models["teacher"] = make_teacher(self.models["model"])

    def eval_models(self):
        return {"teacher": self.models["teacher"]}

    def loss(self, batch):
        with torch.no_grad():
            teacher_probs = F.softmax(self.models["teacher"](batch.x_u).float(), dim=-1)
        x_mix, target, lam = mixup(batch.x_u, teacher_probs, self.mixup_alpha, self.generator)
        logits_l, logits_mix = fused_forward(self.models["model"], batch.x_l, x_mix)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        loss_u = softmax_mse(logits_mix, target)
        weight = self.ramped_weight()
        return StepOutput(loss_l + weight * loss_u,
                          {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "lam": lam.mean()})
