"""What the consistency family shares: a ramped consistency weight (Pi-model, Temporal
Ensembling, Mean Teacher, ICT) and the exponential-moving-average teacher (Mean Teacher, ICT).

The ramp is Laine & Aila's exp(-5 (1 - t / ramp)^2) up to ``consistency_weight``.

Mean Teacher (Tarvainen & Valpola 2017, REFERENCES.md "Mean Teacher"): after every student
step, theta' <- alpha theta' + (1 - alpha) theta with alpha = min(1 - 1/(t + 1), alpha_max),
so the teacher is a true average of the student early on. Only parameters are averaged; the
teacher's batch-norm statistics come from its own train-mode forward passes, as in the
paper's code.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..losses import sigmoid_rampup
from .base import Method, resolve_steps


def make_teacher(student: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)  # trained by averaging, never by gradient
    return teacher


def ema_decay(step: int, alpha_max: float) -> float:
    return min(1.0 - 1.0 / (step + 1), alpha_max)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)


def resolve_ramp(ramp_steps, total_steps: int, fraction: float = 0.25) -> int:
    """None -> a quarter of the run (Mean Teacher ramps 40k of 180k steps, Laine & Aila 80 of 300 epochs);
    else a step count or a fraction of the run (resolve_steps)."""
    return int(fraction * total_steps) if ramp_steps is None else resolve_steps("ramp_steps", ramp_steps, total_steps)


class ConsistencyMethod(Method):
    """A method with ``consistency_weight`` and ``ramp_steps`` attributes (set by the subclass)."""

    consistency_weight: float
    ramp_steps: object

    def setup(self, total_steps):
        super().setup(total_steps)
        self.ramp_steps = resolve_ramp(self.ramp_steps, total_steps)
        self.hparams["ramp_steps"] = self.ramp_steps

    def ramped_weight(self) -> float:
        return self.consistency_weight * sigmoid_rampup(self.step_index, self.ramp_steps)


class EMATeacherMethod(ConsistencyMethod):
    """Keeps models["teacher"] an EMA of models["model"], updated after every student step."""

    def teacher_alpha_max(self, step: int) -> float:
        return self.ema_decay

    def step(self, batch):
        logs = super().step(batch)  # the student's update; step_index is now t + 1
        t = self.step_index - 1
        ema_update(self.models["teacher"], self.models["model"], ema_decay(t, self.teacher_alpha_max(t)))
        return logs
