"""Distillation with unlabeled data: a fixed teacher's temperature-softened distribution on
unlabeled examples teaches a student of any size, mixed with the labeled loss.

Source: Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners"
(SimCLRv2), step 3 (survey seed 004; REFERENCES.md "Other methods"):
L = CE(y, f_S(x_l)) + lambda x (-sum_u sum_y P_T(y | u; tau) log P_S(y | u; tau)), with
P(y | u; tau) = softmax(logits / tau). The teacher is fixed: either a trained run
(``teacher=RUN``, any architecture; it reads the unlabeled examples through its own evaluation
transform) or trained here in a first phase (``teacher_steps``, half the run by default;
``teacher_options`` sets its model options, e.g. a larger teacher for a smaller student).

The machinery is Noisy Student's (mentor/methods/noisy_student.py: the teacher's predictions on
the whole clean pool once, then a student that learns the labeled batch and the teacher's
distribution) with SimCLRv2's choices: every unlabeled example once, no confidence filter and
no class balancing; no student noise (the unlabeled examples in the weak view, no dropout, no
stochastic depth); soft targets at temperature ``temperature`` (SimCLRv2: tau = 1 works as
well as any). The teacher's distribution is computed on clean inputs, not on the student's
augmented view (a fixed teacher's prediction does not change, so it is computed once).

Defaults for the teacher trained in the run, chosen on a validation split (bench/mpl.py
ablation, Fashion-MNIST-1000, 1,500 steps, 2 seeds): ``teacher_width=4`` (the run's model
four times wider, as SimCLRv2 distils a large teacher), ``phase_schedule`` (the
learning-rate schedule laid over each phase, so the teacher anneals before it labels and the
student gets a whole schedule of its own) and ``unlabeled_weight=3``: 76.61% against 74.67%
for an equal teacher on the run's schedule with weight 1. Both phases share one budget, and
this stays 0.4 points under supervised training for the whole budget (77.01%); a trained
teacher (``teacher=RUN``, e.g. that supervised run) is the intended use: its student reached
77.21% against the teacher's 76.94% (weight 1).
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..errors import ConfigError, DataError
from ..losses import sharpen, soft_cross_entropy
from ..models.predict import predict
from ..options import POSITIVE, STEPS, WEIGHT
from ..registry import METHODS
from ..models.mlp import wider_options
from .noisy_student import NoisyStudent


@METHODS.register("distillation")
class Distillation(NoisyStudent):
    name = "distillation"
    option_ranges = {"temperature": POSITIVE, "teacher_steps": STEPS, "unlabeled_weight": WEIGHT, "teacher_width": POSITIVE}
    unranged_options = ("teacher", "student_options", "teacher_options")
    strong_view = "unused"
    smoke_hparams = {"teacher_steps": 3}

    def __init__(self, model_factory, num_classes, seed=0, teacher: Optional[str] = None, temperature: float = 1.0,
                 teacher_steps: float = 0.5, unlabeled_weight: float = 3.0,
                 student_options: Optional[dict] = None, teacher_options: Optional[dict] = None,
                 teacher_width: float = 4.0, phase_schedule: bool = True):
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        if teacher is not None and not os.path.exists(os.path.join(teacher, "checkpoint.pt")):
            raise DataError(f"teacher run {teacher!r} has no checkpoint.pt; give the folder of a trained `mentor train` run")
        self.teacher, self.temperature, self.teacher_width = teacher, temperature, teacher_width
        if teacher is None and teacher_options is None and teacher_width != 1 and hasattr(model_factory, "name"):
            # the teacher trained here: the run's architecture, teacher_width times wider
            try:
                teacher_options = wider_options(model_factory.name, model_factory.options, teacher_width)
            except ConfigError:  # a model without a width to scale (cnn13): an equal teacher, said in hparams
                self.teacher_width = 1.0
        super().__init__(model_factory, num_classes, seed, teacher_steps=teacher_steps, labels="soft", threshold=0.0,
                         balance=False, unlabeled_weight=unlabeled_weight, student_dropout=0.0, stochastic_depth=0.0,
                         student_options=student_options, teacher_options=teacher_options,
                         phase_schedule=phase_schedule)

    @property
    def given_teacher(self) -> bool:
        return self.teacher is not None

    @property
    def needs_pool_in_memory(self):
        return "predicts its teacher on every example of the pool"

    def choose_pool(self, pool):
        return pool

    def _teacher_distribution(self) -> torch.Tensor:
        pool = self.unlabeled_pool
        if self.teacher is None:
            probs = super()._teacher_distribution()
        else:
            if self.open_run is None:
                raise ConfigError("distillation from a teacher run needs the trainer (it opens the run folder)")
            run = self.open_run(self.teacher, device=str(pool.x.device))
            if tuple(run.dataset.x_train.shape[1:]) != tuple(pool.x.shape[1:]):
                raise DataError(f"the teacher run {self.teacher} was trained on examples of shape "
                                f"{tuple(run.dataset.x_train.shape[1:])}, this run's are {tuple(pool.x.shape[1:])}")
            if run.dataset.num_classes != self.num_classes:
                raise DataError(f"the teacher run {self.teacher} has {run.dataset.num_classes} classes, this run {self.num_classes}")
            probs = predict(run.method.eval_model(), run.views.eval, pool.x, pool.x.device, 1024, run.method.autocast)
        return sharpen(probs, self.temperature)  # softmax(logits / tau): the softened distribution

    def student_view(self, stored: torch.Tensor) -> torch.Tensor:
        pool = self.unlabeled_pool
        return pool.weak(stored, self.device_generator(stored.device)) if pool.weak is not None else pool.transform(stored)

    def unlabeled_loss(self, logits_u: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits_u / self.temperature, target)
