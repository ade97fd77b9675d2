"""Meta Pseudo Labels: a teacher that learns from the student's feedback.

Source: Pham et al., "Meta Pseudo Labels" (seeds/001, section 2 and 3.1) and its appendix
(seeds/000: the derivation in section A, Algorithm 1, the stabilisers in C.3). See also
REFERENCES.md, "Meta Pseudo Labels", for the defects of the public code this file avoids.

One step, with eta_S the student's current learning rate and B the unlabeled batch size:
1. The teacher labels the unlabeled batch x_u: a sampled or argmax hard label y_hat, or its
   full distribution q (soft).
2. The student takes an SGD step on CE(y_hat, S(x_u)) (+ w * CE(y_l, S(x_l)), see below):
   theta_S' = theta_S - eta_S * (g_u + w g_sup).
3. Feedback. g_l = grad CE(y_l, S(x_l; theta_S')), the student's labeled gradient after the
   step. The one-step objective is R(theta_T) = CE(y_l, S(x_l; theta_S')); to first order in
   eta_S, dR/dtheta_T = -(eta_S / B) sum_ik d_ik dq_ik/dtheta_T, with
   d_ik = <g_l, grad_theta_S -log S_k(x_i; theta_S)> (one Jacobian-vector product through the
   student at theta_S, on the same fused batch and dropout mask as the step). Teacher terms:
   - "expected" (default): exactly that gradient. For soft labels it is the exact
     meta-gradient (g_u is linear in q). For hard labels it is the expectation over
     y_hat ~ q of Equation 12's REINFORCE estimate, in closed form, so the teacher's
     update carries no label-sampling noise (tests: within O(eta_S) of the exact
     meta-gradient from a single draw).
   - "dot" (Algorithm 1 as written): one scalar h = eta_S <g_l, g_u> for the batch, teacher
     term h * mean_i CE(y_hat_i, T(x_i)). Its expectation is dR/dtheta_T / B (the mean, the
     official code's reduction). The scalar multiplies the scores of all B sampled labels.
     Each score has zero mean, but their noise grows like sqrt(B) around the signal. With
     the unbiased sum, one step's MPL gradient on a 448-example batch was as large as the
     supervised gradient and pointed in a random direction; the teacher fell to chance.
   - "cosine" (C.3): h = cos(g_l, g_u), teacher term h * mean CE (soft labels: the exact
     gradient divided by eta_S B |g_l| |g_u|). "loss_diff": h = L_old - L_new, the
     first-order form of "dot", as in the public code.
   - "none": no MPL term (the ablation control: a teacher trained by its auxiliary losses
     that labels data for the student online).
   If training the student on y_hat lowered its labeled loss, the teacher's step makes y_hat
   MORE likely. (Both public codebases flip this sign.)
4. The teacher also gets supervised CE on (x_l, y_l) and, when the batch carries a strong
   view, the UDA loss on (weak, strong) views (Algorithm 1).

Departures from Algorithm 1 in the defaults, each chosen on a validation split
(BENCHMARKS.md, "Meta Pseudo Labels"); ``--preset mpl-paper`` restores the paper's recipe:
- ``labels="soft"``: the student learns the teacher's distribution, and the teacher's MPL
  gradient is the exact meta-gradient (no REINFORCE). Sampled labels (Algorithm 1) add label
  noise to the student's targets;
- ``feedback="expected"`` for hard labels instead of the scalar REINFORCE estimate (above);
- ``student_labeled_weight=1``: the student also trains on the labeled batch. In the paper it
  sees labels only in a final finetuning phase, and at short budgets it ended 4-5 points
  below its own teacher. The feedback stays exact: g_l is taken after the combined step and
  only g_u depends on the teacher.

Images (Algorithm 1): the teacher's UDA compares its weak and strong views, the student trains
on the strong view (the view the pseudo labels were drawn on), and the trainer's EMA of the
student (``--ema-decay``) is evaluated alongside it. Presets: mpl-cifar10, mpl-cifar10-300k,
mpl-svhn, mpl-paper.

Phases: the student starts after ``student_wait_steps`` and is finetuned on labeled data alone
for the last ``finetune_steps`` (section 2, "Finally, ... finetune it on labeled data"), with
its own optimizer and schedule, or with a separate constant-lr SGD when ``finetune_lr`` is
given (the paper: 1e-5). Each phase length and ``uda_ramp_steps`` is a step count, or a
fraction of the run when below 1 (0.1 = the first / last 10%). The student is the model
returned and evaluated.

Notes. Equation 12 assumes a plain SGD student step; with momentum or weight decay the
feedback still uses eta_S * g_u as the step, as the paper does.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp

from ..errors import ConfigError, check_unit_interval
from ..losses import linear_ramp, soft_cross_entropy, uda_consistency
from ..models.layers import frozen_bn_statistics, make_noise_replayable, noise_mode
from ..options import DROPOUT, MOMENTUM, POSITIVE, STEPS, UNIT, WEIGHT, Choice
from ..registry import METHODS
from .base import Method, flat, fused_forward, resolve_steps, learning_rate, upcast
from .pseudo_label import LABEL_KINDS, check_label_kind, teacher_targets

FEEDBACK_MODES = ("expected", "dot", "cosine", "loss_diff", "none")
# Which view of x_u the teacher labels: the student's own (the strong view when there is one,
# Algorithm 1) or the weak view (a cleaner label for the student's strong view, as in Noisy Student).
LABEL_VIEWS = ("student", "weak")
# Feedback modes that multiply a sampled label's score by a scalar reward (REINFORCE).
SCALAR_FEEDBACK = ("dot", "cosine", "loss_diff")


def dropout_option(rate: Optional[float]) -> dict:
    return {} if rate is None else {"dropout": rate}


@METHODS.register("meta_pseudo_labels")
class MetaPseudoLabels(Method):
    name = "meta_pseudo_labels"
    option_ranges = {"labels": Choice(*LABEL_KINDS), "feedback": Choice(*FEEDBACK_MODES), "feedback_weight": WEIGHT,
                     "baseline_decay": MOMENTUM, "teacher_lr": POSITIVE, "supervised_weight": WEIGHT,
                     "student_labeled_weight": WEIGHT, "uda_weight": WEIGHT, "uda_temperature": POSITIVE,
                     "uda_threshold": UNIT, "uda_ramp_steps": STEPS, "label_smoothing": UNIT,
                     "label_view": Choice(*LABEL_VIEWS), "student_wait_steps": STEPS, "finetune_steps": STEPS,
                     "finetune_lr": POSITIVE, "teacher_dropout": DROPOUT, "student_dropout": DROPOUT}
    # Phases are host branches between compiled pieces, the ramp and the rates are device data
    # (compile_step); sampled labels and the moving baseline are not (capture_blocker).
    capturable = True
    # dist_align / debias (mentor.methods.alignment) adjust the teacher's labelling logits by a
    # constant per class: the student learns the adjusted distribution, the feedback is its gradient.
    makes_pseudo_labels = True

    def __init__(self, model_factory, num_classes, seed=0,
                 labels: str = "soft",
                 feedback: str = "expected",
                 feedback_weight: float = 1.0,
                 baseline_decay: Optional[float] = None,
                 teacher_lr: Optional[float] = None,
                 supervised_weight: float = 1.0,
                 student_labeled_weight: float = 1.0,
                 uda_weight: float = 1.0,
                 uda_temperature: float = 0.7,
                 uda_threshold: float = 0.6,
                 uda_ramp_steps: float = 0,
                 label_smoothing: float = 0.0,
                 label_view: str = "student",
                 student_wait_steps: float = 0,
                 finetune_steps: float = 0,
                 finetune_lr: Optional[float] = None,
                 teacher_dropout: Optional[float] = None,
                 student_dropout: Optional[float] = None):
        super().__init__(model_factory, num_classes, seed)
        check_label_kind(labels)
        if label_view not in LABEL_VIEWS:
            raise ConfigError(f"unknown label_view {label_view!r}; choose one of {', '.join(LABEL_VIEWS)}")
        self._check_feedback(labels, feedback, baseline_decay, student_labeled_weight)
        for name, value in (("feedback_weight", feedback_weight), ("student_labeled_weight", student_labeled_weight),
                            ("supervised_weight", supervised_weight), ("uda_weight", uda_weight)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if finetune_lr is not None and finetune_lr <= 0:
            raise ConfigError(f"finetune_lr must be positive (or none: the student's own optimizer), got {finetune_lr}")
        self.labels = labels
        self.feedback = feedback
        self.feedback_weight = feedback_weight
        self.baseline_decay = baseline_decay
        self.teacher_lr = teacher_lr
        self.supervised_weight = supervised_weight
        self.student_labeled_weight = student_labeled_weight
        self.uda_weight = uda_weight
        self.uda_temperature = uda_temperature
        self.uda_threshold = uda_threshold
        self.uda_ramp_steps = uda_ramp_steps
        self.label_smoothing = label_smoothing
        self.label_view = label_view
        self.student_wait_steps = student_wait_steps
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.teacher_dropout = teacher_dropout
        self.student_dropout = student_dropout
        self.baseline = 0.0
        self.build_teacher(model_factory)
        self.models["student"] = model_factory(**dropout_option(student_dropout))
        self._student_noise = make_noise_replayable(self.models["student"])
        self._ramp = None  # under capture: the UDA ramp factor as a device tensor

    @staticmethod
    def _check_feedback(labels, feedback, baseline_decay, student_labeled_weight):
        if feedback not in FEEDBACK_MODES:
            raise ConfigError(f"unknown feedback {feedback!r}; choose one of {', '.join(FEEDBACK_MODES)}")
        if labels == "soft" and feedback in ("dot", "loss_diff"):
            raise ConfigError(f"feedback {feedback!r} is a scalar REINFORCE reward and needs hard labels; soft "
                              "labels get the exact meta-gradient ('expected') or its normalised form ('cosine')")
        if baseline_decay is not None:
            check_unit_interval("baseline_decay", baseline_decay)
            if labels == "soft" or feedback not in SCALAR_FEEDBACK:
                raise ConfigError("a moving-average baseline reduces the variance of a scalar REINFORCE reward "
                                  "(feedback dot, cosine or loss_diff with hard labels); 'expected' and soft "
                                  "labels have no sampling noise to reduce: drop baseline_decay")
        if feedback == "loss_diff" and student_labeled_weight > 0:
            raise ConfigError("feedback 'loss_diff' reads the student's labeled loss before and after its step, "
                              "which the student's own labeled loss also lowers; set student_labeled_weight=0 "
                              "(the paper's student) or use feedback 'expected' or 'dot'")

    def build_teacher(self, model_factory) -> None:
        # MPL Table 8 gives teacher and student their own dropout rates (None: the model's own).
        self.models["teacher"] = model_factory(**dropout_option(self.teacher_dropout))

    # --- set-up -------------------------------------------------------------------------
    def configure_optimizers(self, make_optimizer):
        self.optimizers["teacher"] = make_optimizer(self.models["teacher"].parameters(), lr=self.teacher_lr)
        self.optimizers["student"] = make_optimizer(self.models["student"].parameters())
        if self.finetune_lr is not None:
            # The paper's finetuning: its own constant learning rate (1e-5), momentum 0.9.
            self.optimizers["finetune"] = torch.optim.SGD(self.models["student"].parameters(),
                                                          lr=self.finetune_lr, momentum=0.9)

    def scheduled_optimizers(self):
        return {k: o for k, o in self.optimizers.items() if k != "finetune"}

    def setup(self, total_steps):
        super().setup(total_steps)
        for name in ("student_wait_steps", "finetune_steps", "uda_ramp_steps"):
            setattr(self, name, resolve_steps(name, getattr(self, name), total_steps))
            self.hparams[name] = getattr(self, name)
        if self.student_wait_steps + self.finetune_steps > total_steps:
            raise ConfigError(f"student_wait_steps ({self.student_wait_steps}) + finetune_steps "
                              f"({self.finetune_steps}) exceed the {total_steps} training steps")

    def eval_model(self):
        return self.models["student"]

    def eval_models(self):
        return {"teacher": self.models["teacher"]}  # for diagnosis; the student is the result

    def extra_state(self):
        return {"baseline": self.baseline}

    def load_extra_state(self, state):
        self.baseline = float(state["baseline"])

    # --- capture ------------------------------------------------------------------------
    def capture_blocker(self):
        if self.labels == "sample":
            return "samples its hard labels on the host (labels='sample'; 'soft' and 'argmax' are drawn on the device)"
        if self.baseline_decay is not None:
            return "keeps its moving-average baseline (baseline_decay) as a host number updated from each step"
        return None

    def compile_step(self, compile):
        """The step's pieces, each a static graph: the teacher's forward and losses, the student's
        step forward and losses, the labeled forward (L_old, L_new), the feedback's JVP; the
        optimizer steps are compiled by the trainer. Between them, in eager code: the phase
        branch (a host step count, no device read), autograd.grad through the compiled
        backwards, and the noise mode of the student's dropout (record, then replay). The
        finetuning phase keeps the shared supervised_update: its forward and backward run eagerly,
        its optimizer step compiled."""
        self._teacher_losses = compile(self._teacher_losses)
        self._student_losses = compile(self._student_losses)
        self._labeled_loss = compile(self._labeled_loss)
        self._labeled_gradient_jvp = compile(self._labeled_gradient_jvp)
        if self.uda_ramp_steps > 0:  # the ramp as data, not a new constant (and a new graph) per step
            self._ramp = torch.zeros((), device=next(self.models.parameters()).device)

    # --- one step -----------------------------------------------------------------------
    def step(self, batch):
        self.train()
        t = self.step_index
        self.step_index += 1
        with self.autocast():
            if self.finetune_steps > 0 and t >= self.total_steps - self.finetune_steps:
                return self._finetune_step(batch)
            return self._mpl_step(batch, student_active=t >= self.student_wait_steps, ramp=self._uda_ramp(t))

    def _uda_ramp(self, t: int):
        """The UDA term's ramp factor at step t: a float, or under capture a device tensor filled in
        place (an asynchronous fill, no read)."""
        value = linear_ramp(t, self.uda_ramp_steps)
        return value if self._ramp is None else self._ramp.fill_(value)

    def _finetune_step(self, batch):
        opt = self.optimizers["finetune" if self.finetune_lr is not None else "student"]
        loss = self.supervised_update(self.models["student"], opt, batch)
        return {"loss": loss, "loss_finetune": loss}

    @staticmethod
    def student_view(batch):
        """The view of x_u the student learns: the strong view when there is one (Algorithm 1)."""
        return batch.x_u_strong if batch.x_u_strong is not None else batch.x_u

    def teacher_forward(self, batch):
        """Teacher logits on the labeled batch, on the view the student learns (x_u_student),
        and on the weak view for UDA or label_view="weak" (None without a strong view). One fused pass."""
        teacher = self.models["teacher"]
        has_strong = batch.x_u_strong is not None
        needs_weak = has_strong and (self.uda_weight > 0 or self.label_view == "weak")
        student_view = self.student_view(batch)
        views = [batch.x_l, student_view] + ([batch.x_u] if needs_weak else [])
        logits = fused_forward(teacher, *views)
        return logits[0], logits[1], (logits[2] if needs_weak else None), student_view

    def _teacher_losses(self, batch, ramp):
        """The teacher's supervised and UDA losses, the logits it labels the student's batch with
        (those of the student's view, or of the weak view with label_view="weak"), that view, logs."""
        t_logits_l, t_logits_u, t_logits_weak, x_u = self.teacher_forward(batch)
        teacher_loss = self.supervised_weight * F.cross_entropy(
            t_logits_l, batch.y_l, label_smoothing=self.label_smoothing)
        logs = {"teacher_sup": teacher_loss.detach()}
        if t_logits_weak is not None and self.uda_weight > 0:
            uda, mask = uda_consistency(t_logits_weak, t_logits_u, self.uda_temperature, self.uda_threshold)
            teacher_loss = teacher_loss + self.uda_weight * ramp * uda
            logs.update(teacher_uda=uda.detach(), uda_mask=mask)
        # The labels and the teacher's MPL term come from the same teacher logits (the same view).
        labeling = t_logits_weak if self.label_view == "weak" and t_logits_weak is not None else t_logits_u
        # The shared dist_align / debias: a constant per class added to the teacher's logits, so
        # the student learns the adjusted distribution and the MPL gradient is that distribution's.
        labeling = self.adjust_pseudo_label_logits(labeling, labeled_logits=t_logits_l)
        return teacher_loss, labeling, x_u, logs

    def _mpl_step(self, batch, student_active: bool, ramp):
        teacher_loss, labeling, x_u, logs = self._teacher_losses(batch, ramp)
        if student_active:
            mpl_term, student_logs = self._student_step_and_feedback(batch, x_u, labeling)
            mpl_term = self.feedback_weight * mpl_term
            teacher_loss = teacher_loss + mpl_term
            logs.update(student_logs, teacher_mpl=mpl_term.detach())
        opt = self.optimizers["teacher"]
        opt.zero_grad(set_to_none=True)
        teacher_loss.backward()
        opt.step()
        logs["loss_teacher"] = teacher_loss.detach()
        logs["loss"] = logs.get("loss_u", teacher_loss.detach())
        return logs

    def _student_losses(self, x_l, y_l, x_u, t_logits_u):
        """The teacher's labels (no gradient) and the student's losses on them and on the labeled
        batch, from one forward over labeled + unlabeled (one BN batch, as the public code)."""
        targets = teacher_targets(t_logits_u, self.labels, self.generator)  # (B, C)
        s_logits_l, s_logits_u = fused_forward(self.models["student"], x_l, x_u)
        return targets, soft_cross_entropy(s_logits_u, targets), F.cross_entropy(s_logits_l, y_l)

    def _labeled_loss(self, x_l, y_l):
        """The student's labeled loss from a forward of the labeled batch alone (L_old, L_new)."""
        return F.cross_entropy(upcast(self.models["student"](x_l)), y_l)

    def _student_step_and_feedback(self, batch, x_u, t_logits_u):
        """Student SGD step on the teacher's labels; returns the teacher's MPL term and logs."""
        student, opt = self.models["student"], self.optimizers["student"]
        params = [p for p in student.parameters() if p.requires_grad]
        eta = learning_rate(opt)
        w = self.student_labeled_weight
        needs_d = self.feedback == "expected" or (self.feedback == "cosine" and self.labels == "soft")
        needs_g_u = self.feedback in ("dot", "cosine")

        # The step's forward records its dropout masks; the JVP for d_ik replays them (the same
        # input, the same masks: the same function of the student's weights).
        with noise_mode(self._student_noise, "record"):
            targets, loss_u, loss_sup = self._student_losses(batch.x_l, batch.y_l, x_u, t_logits_u)
        with torch.no_grad(), frozen_bn_statistics(student):
            # The labeled loss before the step, measured the way L_new is after it: a forward of
            # the labeled batch alone. (Read off the fused forward, as the public code does, batch
            # norm would normalise it with other statistics and bias L_old - L_new.)
            loss_old = self._labeled_loss(batch.x_l, batch.y_l)
        if needs_g_u:
            g_u = torch.autograd.grad(loss_u, params, retain_graph=w > 0)
            g_u_flat = flat(g_u)  # a copy, taken before the optimizer reads the gradients
            step_grads = g_u if w == 0 else [a + w * b for a, b in zip(g_u, torch.autograd.grad(loss_sup, params))]
        else:
            step_grads = torch.autograd.grad(loss_u + w * loss_sup if w > 0 else loss_u, params)
        old_params = [p.detach().clone() for p in params] if needs_d else None
        for p, g in zip(params, step_grads):
            # In the parameter's layout, as backward() would leave it (a compiled backward may return
            # another; the compiled optimizer step, shared with the finetuning phase, expects one).
            p.grad = g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)
        opt.step()

        with frozen_bn_statistics(student):  # a measurement, not a training batch: BN statistics stay
            loss_new = self._labeled_loss(batch.x_l, batch.y_l)
        g_l = torch.autograd.grad(loss_new, params)
        logs = {"loss_u": loss_u.detach(), "loss_student_sup": loss_sup.detach(), "loss_l_old": loss_old,
                "loss_l_new": loss_new.detach()}
        if needs_d:
            with noise_mode(self._student_noise, "replay"):
                d = self._labeled_gradient_jvp(old_params, [g.detach() for g in g_l], batch.x_l, x_u)  # (B, C)
            # h = eta <g_l, g_u> exactly, since g_u = (1/B) sum_ik targets_ik grad(-log S_k(x_i)).
            logs["h"] = eta * (d * targets).sum() / len(x_u)
        if self.feedback == "none":
            return torch.zeros((), device=loss_u.device), logs
        if self.feedback == "expected":
            q = F.softmax(t_logits_u, dim=-1)
            return -(eta / len(x_u)) * (d * q).sum(), logs  # its gradient is dR/dtheta_T

        g_l_flat = flat(g_l)
        if needs_g_u:
            dot = torch.dot(g_l_flat, g_u_flat)
            norms = (g_l_flat.norm() * g_u_flat.norm()).clamp_min(1e-12)
            logs["h"] = eta * dot
        if self.labels == "soft":  # cosine: the exact gradient, normalised
            q = F.softmax(t_logits_u, dim=-1)
            return -(d * q).sum() / (len(x_u) ** 2 * norms), logs

        if self.feedback == "dot":
            h = eta * dot
        elif self.feedback == "cosine":
            h = dot / norms
        else:  # loss_diff
            h = loss_old - loss_new.detach()
        logs["h"] = h.detach()
        if self.baseline_decay is not None:
            centered = h - self.baseline
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(h)
            h = centered
            logs["baseline"] = torch.tensor(self.baseline)
        ce_teacher = soft_cross_entropy(t_logits_u, targets)  # mean over the batch
        return h.detach() * ce_teacher, logs

    def _labeled_gradient_jvp(self, old_params, g_l, x_l, x_u):
        """d_ik = <g_l, grad_theta_S -log S_k(x_i; theta_S)>: one forward-mode pass through the
        student at its pre-step weights, on the step's fused batch (its dropout masks replayed)."""
        student = self.models["student"]
        names = [n for n, p in student.named_parameters() if p.requires_grad]
        buffers = dict(student.named_buffers())
        x = torch.cat([x_l, x_u])

        def neg_log_probs(*weights):
            # Copies of the buffers, made inside the transform: the train-mode pass normalises with
            # the batch's statistics (as the step's forward did) and its running-statistics update
            # lands in the copies, not in the student.
            copies = {n: b.clone() for n, b in buffers.items()}
            logits = functional_call(student, {**copies, **dict(zip(names, weights))}, (x,))
            return -F.log_softmax(upcast(logits)[len(x_l):], dim=-1)

        _, d = jvp(neg_log_probs, tuple(old_params), tuple(g_l))
        return d.detach()
