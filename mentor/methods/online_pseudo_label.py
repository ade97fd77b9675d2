"""Pseudo-Label, online: the current model labels the unlabeled batch and learns from its labels,
with Arazo et al.'s fixes for confirmation bias.

Sources: Lee 2013, "Pseudo-Label: the simple and efficient semi-supervised learning method"
(survey seed 004, "Pseudo Labeling"), and Arazo et al. 2020, "Pseudo-labeling and confirmation
bias in deep semi-supervised learning" (seed 004, "Reducing confirmation bias"); REFERENCES.md
"Other methods". Per step:
1. Pseudo labels from the current model on the unlabeled batch, without gradient: its argmax
   (``labels="hard"``, Lee) or its softmax distribution (``labels="soft"``, Arazo).
2. Arazo's fix 1, mixup with soft labels (``mixup_alpha`` > 0; Arazo: 1.0): the labeled batch
   (one-hot) and the pseudo-labeled batch are concatenated and each example is mixed with a
   random partner of the whole, lam ~ Beta(alpha, alpha); ``mixup_alpha=0`` is Lee's original.
3. Arazo's fix 2, a minimum number of labeled examples per batch by oversampling: mentor's
   stream already puts --batch-size labeled examples in every batch whatever the size of the
   labeled set (it cycles through it); if that is below ``min_labeled`` (Arazo: 16), the labeled
   batch is repeated up to ``min_labeled`` examples.
4. Loss = CE on the (mixed) labeled part + alpha(t) x CE on the (mixed) pseudo-labeled part;
   alpha(t) ramps linearly from 0 to ``unlabeled_weight`` (Lee: 3) over ``ramp_steps``, after
   ``start_steps`` of labeled-only training (Lee's T1; both accept fractions of the run).
The existing ``pseudo_label`` (MPL's Figure 1 baseline: a fixed teacher) is a different method.

Defaults: Lee's hard labels without mixup (``labels="hard"``, ``mixup_alpha=0``), chosen on a
validation split (bench/mpl.py ablation, BENCHMARKS.md "The survey's methods"): Arazo's soft
labels with mixup 1.0 left the mlp on Fashion-MNIST-1000 2.0 points under supervised training
(validation, 1,500 steps; mixup 0.3 and 0.1 were in between), Lee's form is level with it and
was the best variant on digits too. ``--hp labels=soft mixup_alpha=1`` gives Arazo et al.'s
method; ``min_labeled`` applies in both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import linear_ramp, soft_cross_entropy
from ..options import COUNT, STEPS, WEIGHT, Choice, Range
from ..registry import METHODS
from .base import Method, StepOutput, resolve_steps, upcast
from .mixmatch import mix_batches

LABEL_KINDS = ("soft", "hard")


def oversample(x: torch.Tensor, y: torch.Tensor, minimum: int):
    """The batch repeated (in order, cyclically) up to ``minimum`` examples; unchanged if it has that many."""
    if len(x) >= minimum:
        return x, y
    index = torch.arange(minimum, device=x.device) % len(x)
    return x[index], y[index]


@METHODS.register("online_pseudo_label")
class OnlinePseudoLabel(Method):
    name = "online_pseudo_label"
    option_ranges = {"labels": Choice(*LABEL_KINDS), "mixup_alpha": Range(0), "min_labeled": COUNT,
                     "unlabeled_weight": WEIGHT, "start_steps": STEPS, "ramp_steps": STEPS}
    strong_view = "unused"
    smoke_hparams = {"start_steps": 0}  # the conformance suite's runs are 6 steps long
    makes_pseudo_labels = True  # dist_align / debias apply to the model's labels

    def __init__(self, model_factory, num_classes, seed=0, labels: str = "hard", mixup_alpha: float = 0.0,
                 min_labeled: int = 16, unlabeled_weight: float = 1.0, start_steps: float = 0.1,
                 ramp_steps: float = 0.3):
        super().__init__(model_factory, num_classes, seed)
        if labels not in LABEL_KINDS:
            raise ConfigError(f"unknown labels {labels!r}; choose one of {', '.join(LABEL_KINDS)}")
        if mixup_alpha < 0:
            raise ConfigError(f"mixup_alpha must be >= 0 (0: no mixup), got {mixup_alpha}")
        if int(min_labeled) < 1:
            raise ConfigError(f"min_labeled must be >= 1, got {min_labeled}")
        self.labels, self.mixup_alpha, self.min_labeled = labels, mixup_alpha, int(min_labeled)
        self.unlabeled_weight, self.start_steps, self.ramp_steps = unlabeled_weight, start_steps, ramp_steps
        self.models["model"] = model_factory()

    def setup(self, total_steps):
        super().setup(total_steps)
        self.start_steps = resolve_steps("start_steps", self.start_steps, total_steps)
        self.ramp_steps = resolve_steps("ramp_steps", self.ramp_steps, total_steps)
        self.hparams.update(start_steps=self.start_steps, ramp_steps=self.ramp_steps)

    def weight(self) -> float:
        if self.step_index < self.start_steps:
            return 0.0
        return self.unlabeled_weight * linear_ramp(self.step_index - self.start_steps, self.ramp_steps)

    def loss(self, batch):
        model = self.models["model"]
        weight = self.weight()
        if weight == 0.0:  # Lee's first phase (before T1): the labeled data alone
            loss_l = F.cross_entropy(upcast(model(batch.x_l)), batch.y_l)
            return StepOutput(loss_l, {"loss_l": loss_l.detach()})
        x_l, y_l = oversample(batch.x_l, batch.y_l, self.min_labeled)
        with torch.no_grad():
            probs = self.adjust_pseudo_labels(F.softmax(upcast(model(batch.x_u)), dim=-1))
        targets_u = probs if self.labels == "soft" else F.one_hot(probs.argmax(-1), self.num_classes).float()
        targets_l = F.one_hot(y_l, self.num_classes).float()
        x_u = batch.x_u
        if self.mixup_alpha > 0:
            (x_l, x_u), (targets_l, targets_u) = mix_batches([x_l, x_u], [targets_l, targets_u],
                                                             self.mixup_alpha, self.generator, per_example=False)
        logits = upcast(model(torch.cat([x_l, x_u])))
        loss_l = soft_cross_entropy(logits[:len(x_l)], targets_l)
        loss_u = soft_cross_entropy(logits[len(x_l):], targets_u)
        return StepOutput(loss_l + weight * loss_u,
                          {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(),
                           "pseudo_label_confidence": probs.max(-1).values.mean()})
