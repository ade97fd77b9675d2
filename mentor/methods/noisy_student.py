"""Noisy Student: a teacher's filtered, class-balanced pseudo labels teach an equal-or-larger, noised student.

Source: seeds/002 (Xie et al., "Self-training with Noisy Student improves ImageNet
classification", section 2 and Algorithm 1; REFERENCES.md "Noisy Student"). The teacher, not
noised, labels the unlabeled data; the labels are filtered by confidence and balanced per
class; a student at least as large, noised by RandAugment, dropout and stochastic depth,
learns the labeled data and the pseudo-labeled data together with cross-entropy; the student
then becomes the teacher of the next round.

One run of this method is one round (`mentor noisy-student` chains rounds, see
mentor/pipelines/noisy_student.py):
1. The teacher. Either trained here, in phase 1 (the first ``teacher_steps``, half the run by
   default; cross-entropy on the labeled batch), or given: ``pseudo_labels`` = a folder written
   by `mentor pseudo-label` from a trained run on this run's unlabeled pool; then there is no
   phase 1 and no teacher model in this run.
2. Its predictions on the whole unlabeled pool, in eval mode on clean inputs (no dropout, no
   stochastic depth, no augmentation), filtered and balanced by
   ``mentor.pseudo_labels.filter_and_balance`` (``threshold``, ``per_class`` K, ``balance``).
   The selection is stored in the checkpoint, so a resumed run continues on the same data.
3. Phase 2, the student: cross-entropy on the labeled batch plus ``unlabeled_weight`` x the
   cross-entropy against the teacher's labels (``labels``: "soft", the distribution, or "hard",
   its argmax) on a batch drawn from the selection (duplicates included), in the run's strong
   view: RandAugment (--randaugment-magnitude fixes its magnitude) + Cutout on images,
   Gaussian noise (--strong-noise) on feature data. The pseudo-labeled batch has the run's
   --unlabeled-batch-size, so --unlabeled-batch-size / --batch-size is the paper's unlabeled
   to labeled batch ratio. Model noise: dropout ``student_dropout`` on the features entering
   the classifier (the paper: 0.5 on the final layer; the default here is 0, chosen on the
   validation split, where 0.5 cost the student 0.2 to 2.7 points on every seed, mlp and
   residual_mlp alike; see BENCHMARKS.md) and stochastic depth, the drop probability
   growing linearly to ``stochastic_depth`` at the last residual block (paper: survival 0.8),
   on models with residual blocks (wrn, residual_mlp). ``student_options`` makes the student larger (model
   options, e.g. {"width": 8} on --model wrn, {"hidden": [256, 256]} on the mlp).

The labeled batch reaches the student in the weak view, as in every other method here.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pools import IndexStream
from ..errors import ConfigError, DataError
from ..losses import soft_cross_entropy
from ..models.layers import set_stochastic_depth
from ..models.predict import predict
from ..pseudo_labels import LabelShards, filter_and_balance, read_labels, select_streamed
from ..options import COUNT, DROPOUT, STEPS, UNIT, WEIGHT, Choice
from ..registry import METHODS
from .base import Method, fused_forward, resolve_steps

LABEL_KINDS = ("soft", "hard")


def pool_fingerprint(indices) -> str:
    """Names an unlabeled pool by its dataset indices, so labels made for one pool are not used on another."""
    digest = hashlib.sha1(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"run-pool:{len(indices)}:{digest}"


@METHODS.register("noisy_student")
class NoisyStudent(Method):
    name = "noisy_student"
    option_ranges = {"teacher_steps": STEPS, "labels": Choice(*LABEL_KINDS), "threshold": UNIT, "per_class": COUNT,
                     "unlabeled_weight": WEIGHT, "student_dropout": DROPOUT, "stochastic_depth": DROPOUT}
    unranged_options = ("pseudo_labels", "student_options", "teacher_options")
    strong_view = "optional"
    draws_own_unlabeled = True  # from the filtered, balanced selection, noised by the run's strong view
    view_seed_offset = 19
    # The conformance suite's 6-step runs: 3 steps of teacher, then 3 of student.
    smoke_hparams = {"teacher_steps": 3}

    def __init__(self, model_factory, num_classes, seed=0, teacher_steps: float = 0.5,
                 pseudo_labels: Optional[str] = None, labels: str = "soft", threshold: float = 0.3,
                 per_class: Optional[int] = None, balance: bool = True, unlabeled_weight: float = 1.0,
                 student_dropout: float = 0.0, stochastic_depth: float = 0.2,
                 student_options: Optional[dict] = None, teacher_options: Optional[dict] = None,
                 phase_schedule: bool = False):
        super().__init__(model_factory, num_classes, seed)
        self.phase_schedule = bool(phase_schedule)
        if labels not in LABEL_KINDS:
            raise ConfigError(f"unknown labels {labels!r}; choose one of {', '.join(LABEL_KINDS)}")
        if unlabeled_weight < 0:
            raise ConfigError(f"unlabeled_weight must be >= 0, got {unlabeled_weight}")
        if per_class is not None and per_class <= 0:
            raise ConfigError(f"per_class must be a positive number of examples (or none: pool / classes), got {per_class}")
        self.teacher_steps, self.pseudo_labels, self.labels = teacher_steps, pseudo_labels, labels
        self.threshold, self.per_class, self.balance = threshold, per_class, balance
        self.unlabeled_weight, self.student_dropout, self.stochastic_depth = unlabeled_weight, student_dropout, stochastic_depth
        self.student_options, self.teacher_options = dict(student_options or {}), dict(teacher_options or {})
        if not self.given_teacher:
            self.models["teacher"] = model_factory(**self.teacher_options)
        student = model_factory(**{"dropout": student_dropout, **self.student_options})
        set_stochastic_depth(student, stochastic_depth)
        self.models["student"] = student
        # Built at the first student step: pool positions of the selection (with duplicates)
        # and the teacher's distribution on every pool example.
        self.selected: Optional[torch.Tensor] = None
        self.teacher_probs: Optional[torch.Tensor] = None
        self.selection_stats: list = []
        self.selection_stream: Optional[IndexStream] = None
        self.streamed_selection = False  # the selection streams from shards with the batches (choose_pool)
        self.selection_size: Optional[int] = None

    def configure_optimizers(self, make_optimizer):
        for name, model in self.models.items():
            self.optimizers[name] = make_optimizer(model.parameters())

    def setup(self, total_steps):
        super().setup(total_steps)
        if self.given_teacher:
            self.teacher_steps = 0
        self.teacher_steps = resolve_steps("teacher_steps", self.teacher_steps, total_steps)
        if not self.given_teacher and not 0 < self.teacher_steps < total_steps:
            raise ConfigError(f"teacher_steps={self.teacher_steps} must leave steps for both the teacher and the "
                              f"student within the {total_steps} of the run (or give pseudo_labels=DIR)")
        self.hparams["teacher_steps"] = self.teacher_steps

    def optimizer_phases(self):
        """phase_schedule: the teacher's schedule runs over phase 1 and the student's over phase 2
        (each anneals at the end of its own phase); else both follow the run's schedule."""
        if not self.phase_schedule or self.given_teacher:
            return {}
        return {"teacher": (0, self.teacher_steps), "student": (self.teacher_steps, self.total_steps)}

    @property
    def needs_pool_in_memory(self) -> Optional[str]:
        if self.given_teacher:
            return None
        return ("trains its teacher within the run and labels the whole pool with it (label a streamed pool "
                "with `mentor pseudo-label RUN` and pass pseudo_labels=DIR, or run `mentor noisy-student`)")

    def choose_pool(self, pool):
        """A pool streamed from shards: the student's batches stream from the filtered, balanced
        selection (mentor.pseudo_labels.select_streamed, bounded memory), each example with the
        teacher's soft labels, instead of being drawn here from a pool held in memory."""
        if not pool.streamed:
            return pool
        from ..data.shards.pool import ShardPool

        labels = LabelShards(self.pseudo_labels)
        manifest = labels.manifest
        if manifest.get("source") != pool.fingerprint() or manifest["num_classes"] != self.num_classes:
            raise DataError(f"the pseudo-labels in {self.pseudo_labels} were made for another pool "
                            f"({manifest.get('source')}, {manifest['num_classes']} classes) than this run's "
                            f"({pool.fingerprint()}, {self.num_classes} classes): label the teacher run with "
                            "`mentor pseudo-label RUN` on the same shards and split")
        positions, stats, name = select_streamed(self.pseudo_labels, self.num_classes, self.threshold,
                                                 self.per_class, self.balance, self.seed, pool.excluded)
        self.selection_stats, self.selection_size = stats, len(positions)
        self.streamed_selection, self.draws_own_unlabeled = True, False
        return ShardPool(pool.sets, window=pool.window, positions=positions, targets=labels,
                         name="pseudo-labeled selection", workers=pool.workers, positions_name=name)

    @property
    def given_teacher(self) -> bool:
        """Whether the teacher's labels come from outside this run (then there is no phase 1)."""
        return self.pseudo_labels is not None

    def eval_model(self):
        return self.models["student"]

    def eval_models(self):
        return {"teacher": self.models["teacher"]} if "teacher" in self.models else {}

    # --- phase 1: the teacher -----------------------------------------------------------
    def step(self, batch):
        if self.step_index >= self.teacher_steps:
            return self.student_step(batch)
        self.train()
        self.step_index += 1
        loss = self.supervised_update(self.models["teacher"], self.optimizers["teacher"], batch)
        return {"loss": loss, "loss_teacher": loss}

    # --- the selection --------------------------------------------------------------------
    def _teacher_distribution(self) -> torch.Tensor:
        """(N_u, C) float32: the teacher's predictions on the pool, from this run's teacher or from disk."""
        pool = self.unlabeled_pool
        if self.pseudo_labels is None:
            return predict(self.models["teacher"], pool.transform, pool.x, pool.x.device, 1024, self.autocast)
        labels = read_labels(self.pseudo_labels)
        expected = pool_fingerprint(pool.indices) if pool.indices is not None else None
        if labels.manifest.get("source") != expected or labels.manifest["num_classes"] != self.num_classes:
            raise DataError(f"the pseudo-labels in {self.pseudo_labels} were made for another pool "
                            f"({labels.manifest.get('source')}, {labels.manifest['num_classes']} classes) than this "
                            f"run's ({expected}, {self.num_classes} classes): label the teacher run with "
                            "`mentor pseudo-label RUN` on the same dataset, split seed and --unlabeled-pool")
        return torch.from_numpy(labels.probs.astype(np.float32))

    def _build_selection(self, device) -> None:
        if self.unlabeled_pool is None:
            raise ConfigError("noisy_student pseudo-labels the whole unlabeled pool; set method.unlabeled_pool "
                              "to an UnlabeledPool (the Trainer does)")
        probs = self._teacher_distribution()
        confidence, argmax = probs.max(dim=1)
        selection = filter_and_balance(argmax.cpu().numpy(), confidence.cpu().numpy(), self.num_classes, self.threshold,
                                       self.per_class, self.balance, seed=self.seed)
        self.teacher_probs = probs.to(device)
        self.selected = torch.from_numpy(selection.positions).to(device)
        self.selection_stats = selection.per_class
        self._start_sampling(device)

    def _start_sampling(self, device) -> None:
        generator = torch.Generator().manual_seed(self.seed + 17)
        self.selection_stream = IndexStream(len(self.selected), 1, generator)

    # --- phase 2: the noised student ------------------------------------------------------
    def student_step(self, batch):
        device = batch.x_l.device
        if self.streamed_selection:  # the batch is the selection's, with the teacher's labels
            x_u, target = self.streamed_view(batch), batch.y_u.float()
        else:
            if self.selected is None:
                self._build_selection(device)
            self.selection_stream.batch_size = min(len(batch.x_u), len(self.selected))
            positions = self.selected[self.selection_stream.next().to(device)]
            stored = self.unlabeled_pool.x[positions]
            x_u = self.student_view(stored)
            target = self.teacher_probs[positions]
        if self.labels == "hard":
            target = F.one_hot(target.argmax(dim=1), self.num_classes).float()
        self.train()
        self.step_index += 1
        with self.autocast():
            logits_l, logits_u = fused_forward(self.models["student"], batch.x_l, x_u)
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        loss_u = self.unlabeled_loss(logits_u, target)
        loss = loss_l + self.unlabeled_weight * loss_u
        opt = self.optimizers["student"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "loss_l": loss_l.detach(), "loss_u": loss_u.detach(),
                "pseudo_label_confidence": target.max(dim=1).values.mean()}

    def streamed_view(self, batch) -> torch.Tensor:
        """student_view of a streamed batch: the stream's strong view (clean if none)."""
        if batch.x_u_strong is not None:
            return batch.x_u_strong
        return self.unlabeled_pool.transform(batch.x_u_stored)

    def student_view(self, stored: torch.Tensor) -> torch.Tensor:
        """The noised input of the pseudo-labeled examples: the run's strong view (clean if none)."""
        pool = self.unlabeled_pool
        return pool.strong(stored, self.device_generator(stored.device)) if pool.strong is not None else pool.transform(stored)

    def unlabeled_loss(self, logits_u: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits_u, target)

    # --- state --------------------------------------------------------------------------
    def extra_state(self):
        if self.selected is None:
            return {}
        return {"selected": self.selected.cpu(), "teacher_probs": self.teacher_probs.cpu(),
                "selection_stats": self.selection_stats, "selection_stream": self.selection_stream.state_dict(),
                "selection_generator": self.selection_stream.generator.get_state()}

    def load_extra_state(self, state):
        if not state:
            return
        device = next(self.models["student"].parameters()).device
        self.selected, self.teacher_probs = state["selected"].to(device), state["teacher_probs"].to(device)
        self.selection_stats = state["selection_stats"]
        self._start_sampling(device)
        self.selection_stream.load_state_dict(state["selection_stream"])
        self.selection_stream.generator.set_state(state["selection_generator"])
