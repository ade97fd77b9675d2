"""The exponential-moving-average teacher shared by Mean Teacher and ICT.

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
    """None -> a quarter of the run (Mean Teacher ramps 40k of 180k steps, Laine & Aila 80 of 300 epochs)."""
    return int(fraction * total_steps) if ramp_steps is None else int(ramp_steps)
