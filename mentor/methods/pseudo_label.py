"""Pseudo Labels with a fixed teacher (MPL paper, Figure 1 left, and the middle panel of Figure 2).

Phase 1 (the first ``teacher_steps`` steps): the teacher learns from the labeled batch.
Phase 2 (the rest): the teacher is frozen and the student learns only from the teacher's
pseudo labels on unlabeled data, Equation 1 of the MPL paper (seeds/001). The student is
what is evaluated and returned. This is the baseline MPL improves on: the teacher never
hears how its labels served the student, so its mistakes are copied (confirmation bias).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import soft_cross_entropy
from ..options import STEPS, Choice
from ..registry import METHODS
from .base import Method, resolve_steps, upcast

LABEL_KINDS = ("argmax", "sample", "soft")


def teacher_targets(logits: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Pseudo labels from teacher logits as distributions (one-hot for hard labels), no gradient."""
    probs = F.softmax(upcast(logits.detach()), dim=-1)
    if kind == "soft":
        return probs
    if kind == "argmax":
        labels = probs.argmax(dim=-1)
    else:  # "sample": draw from the teacher's distribution, with the method's own generator
        labels = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
    return F.one_hot(labels, probs.shape[-1]).to(probs.dtype)


def check_label_kind(kind: str) -> None:
    if kind not in LABEL_KINDS:
        raise ConfigError(f"unknown pseudo label kind {kind!r}; choose one of {', '.join(LABEL_KINDS)}")


@METHODS.register("pseudo_label")
class PseudoLabel(Method):
    name = "pseudo_label"
    option_ranges = {"teacher_steps": STEPS, "labels": Choice(*LABEL_KINDS)}
    strong_view = "unused"  # the student learns the clean (weak) view

    def __init__(self, model_factory, num_classes, seed=0, teacher_steps: Optional[int] = None,
                 labels: str = "argmax"):
        super().__init__(model_factory, num_classes, seed)
        check_label_kind(labels)
        self.teacher_steps = teacher_steps
        self.labels = labels
        self.models["teacher"] = model_factory()
        self.models["student"] = model_factory()

    def configure_optimizers(self, make_optimizer):
        self.optimizers["teacher"] = make_optimizer(self.models["teacher"].parameters())
        self.optimizers["student"] = make_optimizer(self.models["student"].parameters())

    def setup(self, total_steps):
        super().setup(total_steps)
        if self.teacher_steps is None:
            self.teacher_steps = total_steps // 2  # half the budget each, unless told otherwise
        else:
            self.teacher_steps = resolve_steps("teacher_steps", self.teacher_steps, total_steps)
        self.hparams["teacher_steps"] = self.teacher_steps
        if not 0 <= self.teacher_steps <= total_steps:
            raise ConfigError(f"teacher_steps={self.teacher_steps} must lie in 0..{total_steps}")

    def eval_model(self):
        return self.models["student"]

    def eval_models(self):
        return {"teacher": self.models["teacher"]}  # for diagnosis; the student is the result

    def step(self, batch):
        teacher, student = self.models["teacher"], self.models["student"]
        self.train()
        with self.autocast():
            if self.step_index < self.teacher_steps:
                loss = F.cross_entropy(teacher(batch.x_l), batch.y_l)
                optimizer, logs = self.optimizers["teacher"], {"loss_teacher": loss.detach()}
            else:
                with torch.no_grad():
                    teacher.eval()  # a frozen, clean teacher labels the data
                    targets = teacher_targets(teacher(batch.x_u), self.labels, self.generator)
                loss = soft_cross_entropy(student(batch.x_u), targets)
                optimizer, logs = self.optimizers["student"], {"loss_u": loss.detach()}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.step_index += 1
        return {"loss": loss.detach(), **logs}
