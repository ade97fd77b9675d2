"""Reduced Meta Pseudo Labels: a small teacher that recalibrates a large, fixed teacher's labels.

Source: the MPL appendix (seeds/000, section E, "Reduced Meta Pseudo Labels"; REFERENCES.md,
"Meta Pseudo Labels"). A large teacher T is trained first; its target distributions on the
student's unlabeled data are precomputed; a reduced teacher T' (a small MLP, "5 layers, ReLU,
128 units" for CIFAR-10) takes T's distribution of an example as input and outputs a
calibrated distribution for the student, and T' is trained with the MPL feedback alongside
the student. Only T' and the student are in memory while the student trains.

Here, within one run of ``--steps``:
1. Phase 1 (the first ``large_teacher_steps``, half the run by default): T, the model of the
   run (``large_teacher_options`` override its model options, e.g. {"hidden": [256, 256]}
   for a wider MLP), trains on the labeled batch; so does the student when it learns labels
   (``student_labeled_weight`` > 0, the default; the paper's student waits for phase 2).
2. T is frozen and its softmax on every example of the unlabeled pool is computed once, in
   eval mode on clean inputs (no augmentation, no dropout), in batches. A resumed run
   recomputes it from the frozen T in its checkpoint instead of storing it.
3. Phase 2: Meta Pseudo Labels with T' as the teacher (every MPL option applies: feedback,
   labels, the student's labeled loss, finetuning). T' sees T's distribution of each
   unlabeled example (the student learns that example's strong view when there is one), and
   gets its supervised CE on T's distribution of the labeled batch. T' has no UDA term: its
   input is one fixed distribution per example, with no views to compare.

T' is residual and starts as the identity, logits = log p + MLP(p) with the MLP's last layer
at zero ("many actions of the reduced teacher would be close to an identity map"): the
student's first labels are T's, and the feedback moves them from there. Evaluated besides
the student: ``teacher`` (T' applied to T) and ``large_teacher`` (T alone).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.predict import predict
from ..options import COUNT, STEPS
from ..registry import METHODS
from .base import resolve_steps, upcast
from .meta_pseudo_labels import MetaPseudoLabels, dropout_option


class ReducedTeacher(nn.Module):
    """T': distribution p (B, C) -> logits log p + MLP(p); an identity map at initialisation."""

    def __init__(self, num_classes: int, hidden: int = 128, layers: int = 5):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ConfigError(f"the reduced teacher needs layers >= 1 and hidden >= 1, got {layers}, {hidden}")
        widths = [num_classes] + [hidden] * (layers - 1)
        blocks = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.correction = nn.Sequential(*blocks, nn.Linear(widths[-1], num_classes))
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.log(p.clamp_min(1e-8)) + self.correction(p)


class TeacherChain(nn.Module):
    """T' after T, for evaluation on raw inputs: logits of T'(softmax(T(x)))."""

    def __init__(self, large: nn.Module, reduced: ReducedTeacher):
        super().__init__()
        self.large, self.reduced = large, reduced

    def forward(self, x):
        return self.reduced(F.softmax(upcast(self.large(x)), dim=-1))


@METHODS.register("reduced_mpl")
class ReducedMetaPseudoLabels(MetaPseudoLabels):
    name = "reduced_mpl"
    option_ranges = {"large_teacher_steps": STEPS, "reduced_hidden": COUNT, "reduced_layers": COUNT}
    unranged_options = ("large_teacher_options",)
    needs_pool_in_memory = "precomputes the large teacher's predictions on every example of the pool"
    capturable = False  # see capture_blocker
    # The conformance suite's 6-step runs: 2 steps for the large teacher, then MPL with T'.
    smoke_hparams = {"large_teacher_steps": 2}

    def __init__(self, model_factory, num_classes, seed=0, large_teacher_steps: float = 0.5,
                 large_teacher_options: Optional[dict] = None, reduced_hidden: int = 128, reduced_layers: int = 5,
                 **mpl_options):
        self.large_teacher_steps = large_teacher_steps
        self.large_teacher_options = dict(large_teacher_options or {})
        self.reduced_hidden = reduced_hidden
        self.reduced_layers = reduced_layers
        super().__init__(model_factory, num_classes, seed, **mpl_options)
        self.large_probs: Optional[torch.Tensor] = None  # T's softmax on the unlabeled pool, (N_u, C)

    def capture_blocker(self):
        return ("switches from its large teacher's phase to MPL by precomputing the large teacher's "
                "predictions on the unlabeled pool, host work between phases")

    def build_teacher(self, model_factory) -> None:
        options = {**dropout_option(self.teacher_dropout), **self.large_teacher_options}
        self.models["large_teacher"] = model_factory(**options)
        self.models["teacher"] = ReducedTeacher(self.num_classes, self.reduced_hidden, self.reduced_layers)

    def configure_optimizers(self, make_optimizer):
        super().configure_optimizers(make_optimizer)
        self.optimizers["large_teacher"] = make_optimizer(self.models["large_teacher"].parameters())

    def setup(self, total_steps):
        super().setup(total_steps)
        self.large_teacher_steps = resolve_steps("large_teacher_steps", self.large_teacher_steps, total_steps)
        self.hparams["large_teacher_steps"] = self.large_teacher_steps
        if self.large_teacher_steps + self.finetune_steps >= total_steps:
            raise ConfigError(f"large_teacher_steps ({self.large_teacher_steps}) + finetune_steps "
                              f"({self.finetune_steps}) leave no step of the {total_steps} for the student")

    def eval_models(self):
        return {"teacher": TeacherChain(self.models["large_teacher"], self.models["teacher"]),
                "large_teacher": self.models["large_teacher"]}

    # --- phase 1: the large teacher -----------------------------------------------------
    def step(self, batch):
        if self.step_index >= self.large_teacher_steps:
            return super().step(batch)
        self.train()
        self.step_index += 1
        loss = self.supervised_update(self.models["large_teacher"], self.optimizers["large_teacher"], batch,
                                      label_smoothing=self.label_smoothing)
        logs = {"loss": loss, "loss_large_teacher": loss}
        if self.student_labeled_weight > 0:
            # A student that learns labels (the default) starts on them now rather than idling
            # through phase 1: with half the run spent on the large teacher, a student trained
            # only in phase 2 ended 2.2 points under supervised training on Fashion-MNIST-1000.
            logs["loss_student_labeled"] = self.supervised_update(
                self.models["student"], self.optimizers["student"], batch, weight=self.student_labeled_weight)
        return logs

    # --- phase 2: MPL with the reduced teacher ------------------------------------------
    @torch.no_grad()
    def _large_distribution(self, x: torch.Tensor) -> torch.Tensor:
        large = self.models["large_teacher"]
        large.eval()  # clean predictions: no dropout, BN running statistics
        with self.autocast():
            return F.softmax(upcast(large(x)), dim=-1)

    def _precompute(self, device) -> None:
        if self.unlabeled_pool is None:
            raise ConfigError("reduced_mpl precomputes its large teacher's predictions on the whole unlabeled "
                              "pool; set method.unlabeled_pool to an UnlabeledPool (the Trainer does)")
        pool = self.unlabeled_pool
        self.large_probs = predict(self.models["large_teacher"], pool.transform, pool.x, pool.x.device, 1024,
                                   self.autocast).to(device)

    def teacher_forward(self, batch):
        if batch.idx_u is None:
            raise ConfigError("reduced_mpl needs the unlabeled sample indices in each batch (Batch.idx_u)")
        if self.large_probs is None:
            self._precompute(batch.x_l.device)
        p_l = self._large_distribution(batch.x_l)
        p_u = self.large_probs[batch.idx_u.to(self.large_probs.device)]
        logits_l, logits_u = self.models["teacher"](torch.cat([p_l, p_u])).split([len(p_l), len(p_u)])
        return logits_l, logits_u, None, self.student_view(batch)
