"""Mean Teacher: the teacher is an exponential moving average of the student's weights.

Source: Tarvainen & Valpola 2017 (seeds/003; REFERENCES.md "Mean Teacher"). Per step:
- the student sees the labeled + unlabeled batch with one draw of noise, the teacher (no
  gradient) the same inputs with an independent draw: "each side with its own noise";
- cost = CE(student, y_l) + w(t) * MSE(softmax(student), softmax(teacher)) over labeled and
  unlabeled inputs, w(t) = consistency_weight * exp(-5 (1 - t / ramp)^2) (the paper's 100
  is for the per-class mean of the squared error);
- after the student's optimizer step the teacher moves: theta' <- a theta' + (1 - a) theta,
  a = min(1 - 1/(t + 1), a_max), a_max = 0.99 during the ramp-up and 0.999 after it.
Dual output (section 3.4, ``dual_head=true``): the last linear layer gets 2C outputs, one
head classifies, the other carries the consistency cost, plus
logit_distance_weight (0.01) * MSE between the two heads' logits.
The student is evaluated as the method's model, the teacher as ``teacher_test_accuracy``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..losses import softmax_mse
from ..options import MOMENTUM, STEPS, WEIGHT
from ..registry import METHODS
from .base import StepOutput
from .consistency import EMATeacherMethod, make_teacher


def widen_classifier(model: nn.Module, factor: int) -> nn.Module:
    """Replace the model's last linear layer by one with factor x as many outputs (in place)."""
    name, last = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name, last = module_name, module
    if last is None:
        raise ConfigError("dual_head needs a model whose last layer is nn.Linear")
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Linear(last.in_features, last.out_features * factor))
    return model


class FirstHead(nn.Module):
    """The classification head of a dual-output model: its first C logits."""

    def __init__(self, model: nn.Module, num_classes: int):
        super().__init__()
        self.model, self.num_classes = model, num_classes

    def forward(self, x):
        return self.model(x)[:, :self.num_classes]


@METHODS.register("mean_teacher")
class MeanTeacher(EMATeacherMethod):
    name = "mean_teacher"
    option_ranges = {"consistency_weight": WEIGHT, "ramp_steps": STEPS, "ema_decay_rampup": MOMENTUM, "ema_decay": MOMENTUM,
                     "logit_distance_weight": WEIGHT}
    strong_view = "unused"
    second_view = True

    def __init__(self, model_factory, num_classes, seed=0, consistency_weight: float = 100.0,
                 ramp_steps: Optional[int] = None, ema_decay_rampup: float = 0.99, ema_decay: float = 0.999,
                 dual_head: bool = False, logit_distance_weight: float = 0.01):
        super().__init__(model_factory, num_classes, seed)
        check_unit_interval("ema_decay_rampup", ema_decay_rampup)
        check_unit_interval("ema_decay", ema_decay)
        self.consistency_weight = consistency_weight
        self.ramp_steps = ramp_steps
        self.ema_decay_rampup = ema_decay_rampup
        self.ema_decay = ema_decay
        self.dual_head = dual_head
        self.logit_distance_weight = logit_distance_weight
        student = model_factory()
        if dual_head:
            widen_classifier(student, 2)
        self.models["model"] = student
        self.models["teacher"] = make_teacher(student)
        heads = (lambda m: FirstHead(m, num_classes)) if dual_head else (lambda m: m)
        self._student_view, self._teacher_view = heads(student), heads(self.models["teacher"])

    def eval_model(self):
        return self._student_view

    def eval_models(self):
        return {"teacher": self._teacher_view}

    def loss(self, batch):
        c, n_l = self.num_classes, len(batch.x_l)
        student_logits = self.models["model"](torch.cat([batch.x_l, batch.x_u])).float()
        with torch.no_grad():
            teacher_logits = self.models["teacher"](torch.cat([batch.x_l_alt, batch.x_u_alt])).float()[:, :c]
        class_logits = student_logits[:, :c]
        cons_logits = student_logits[:, c:] if self.dual_head else class_logits
        loss_l = F.cross_entropy(class_logits[:n_l], batch.y_l)
        loss_u = softmax_mse(cons_logits, F.softmax(teacher_logits, dim=-1))
        weight = self.ramped_weight()
        loss = loss_l + weight * loss_u
        logs = {"loss_l": loss_l.detach(), "loss_u": loss_u.detach()}
        if self.dual_head:
            distance = ((class_logits - cons_logits) ** 2).mean()
            loss = loss + self.logit_distance_weight * distance
            logs["logit_distance"] = distance.detach()
        return StepOutput(loss, logs)

    def teacher_alpha_max(self, step):
        return self.ema_decay_rampup if step < self.ramp_steps else self.ema_decay
