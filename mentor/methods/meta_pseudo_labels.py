"""Meta Pseudo Labels: a teacher that learns from the student's feedback.

Source: Pham et al., "Meta Pseudo Labels" (seeds/001, section 2 and 3.1) and its appendix
(seeds/000: the derivation in section A, Algorithm 1, the stabilisers in C.3). See also
REFERENCES.md, "Meta Pseudo Labels", for the defects of the public code this file avoids.

One step, with eta_S the student's current learning rate:
1. The teacher labels the unlabeled batch x_u: a sampled or argmax hard label y_hat, or its
   full distribution q (soft).
2. The student takes an SGD step on CE(y_hat, S(x_u)):  theta_S' = theta_S - eta_S * g_u.
3. Feedback. g_l = grad CE(y_l, S(x_l; theta_S')), the student's labeled gradient after the step.
   - hard labels (REINFORCE, Equation 12): h = eta_S * <g_l, g_u> ("dot"), or cos(g_l, g_u)
     ("cosine", C.3), or L_old - L_new ("loss_diff", the first-order form of dot), optionally
     minus a moving-average baseline b (C.3). Teacher term: h * CE(y_hat, T(x_u)).
     If training the student on y_hat lowered its labeled loss, h > 0 and the teacher's step
     on h * CE makes y_hat MORE likely. (Both public codebases flip this sign.)
   - soft labels: the one-step objective R(theta_T) = L_l(theta_S - eta_S grad L_u(q(theta_T)))
     is differentiable, and this file computes its exact gradient: since grad L_u is linear
     in q, dR/dtheta_T = -(eta_S / B) sum_ik d_ik dq_ik/dtheta_T, where d_ik = <g_l, grad of
     -log S_k(x_i)> is one Jacobian-vector product through the student at theta_S.
   - "none" gives the teacher no MPL term: the ablation control (the student then learns
     online from a teacher trained only by its auxiliary losses, i.e. Pseudo Labels).
4. The teacher also gets supervised CE on (x_l, y_l) and, when the batch carries a strong
   view, the UDA loss on (weak, strong) views (Algorithm 1).

Scale of the hard-label teacher term. The appendix derives Equation 12 for one unlabeled
example. For a batch of B labels drawn independently, E[h * grad CE(y_hat_i)] over i != j
vanishes, so the estimator is unbiased for the batch objective only with the teacher term
summed over the batch (h * sum_i CE_i); a mean would shrink it by B. "dot" and "loss_diff"
use the sum (tests check it against the exact expected gradient); "cosine" is a scale-free
stabiliser and keeps the mean, the form the published learning rates were tuned with.

Images (Algorithm 1): the teacher's UDA compares its weak and strong views, the student trains
on the strong view (the view the pseudo labels were drawn on), and the trainer's EMA of the
student (``--ema-decay``) is evaluated alongside it. Presets: mpl-cifar10, mpl-cifar10-300k, mpl-svhn.

After ``total_steps - finetune_steps`` steps the student is finetuned on labeled data alone
(section 2, "Finally, ... finetune it on labeled data"), with its own constant-lr SGD.
The student is the model returned and evaluated.

Notes. Equation 12 assumes a plain SGD student step; with momentum or weight decay the
feedback still uses eta_S * g_u as the step, as the paper does. With dropout in the student,
the soft-label JVP sees its own dropout mask.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp

from ..errors import ConfigError, check_unit_interval
from ..losses import linear_ramp, soft_cross_entropy, uda_consistency
from ..models.layers import frozen_bn_statistics
from ..registry import METHODS
from .base import Method, flat, sgd_update_lr
from .pseudo_label import check_label_kind, teacher_targets

FEEDBACK_MODES = ("dot", "cosine", "loss_diff", "none")


def _dropout(rate: Optional[float]) -> dict:
    return {} if rate is None else {"dropout": rate}


@METHODS.register("meta_pseudo_labels")
class MetaPseudoLabels(Method):
    name = "meta_pseudo_labels"

    def __init__(self, model_factory, num_classes, seed=0,
                 labels: str = "sample",
                 feedback: str = "dot",
                 baseline_decay: Optional[float] = None,
                 teacher_lr: Optional[float] = None,
                 supervised_weight: float = 1.0,
                 uda_weight: float = 1.0,
                 uda_temperature: float = 0.7,
                 uda_threshold: float = 0.6,
                 uda_ramp_steps: int = 0,
                 label_smoothing: float = 0.0,
                 student_wait_steps: int = 0,
                 finetune_steps: int = 0,
                 finetune_lr: float = 1e-5,
                 teacher_dropout: Optional[float] = None,
                 student_dropout: Optional[float] = None):
        super().__init__(model_factory, num_classes, seed)
        check_label_kind(labels)
        if feedback not in FEEDBACK_MODES:
            raise ConfigError(f"unknown feedback {feedback!r}; choose one of {', '.join(FEEDBACK_MODES)}")
        if labels == "soft" and feedback == "loss_diff":
            raise ConfigError("feedback 'loss_diff' is a scalar REINFORCE reward and needs hard labels; "
                              "soft labels use the exact gradient ('dot') or its normalised form ('cosine')")
        if baseline_decay is not None:
            check_unit_interval("baseline_decay", baseline_decay)
        if labels == "soft" and baseline_decay is not None:
            raise ConfigError("a moving-average baseline reduces REINFORCE variance and has no effect on "
                              "soft labels (their gradient is exact); drop baseline_decay or use hard labels")
        self.labels = labels
        self.feedback = feedback
        self.baseline_decay = baseline_decay
        self.teacher_lr = teacher_lr
        self.supervised_weight = supervised_weight
        self.uda_weight = uda_weight
        self.uda_temperature = uda_temperature
        self.uda_threshold = uda_threshold
        self.uda_ramp_steps = uda_ramp_steps
        self.label_smoothing = label_smoothing
        self.student_wait_steps = student_wait_steps
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.teacher_dropout = teacher_dropout
        self.student_dropout = student_dropout
        self.baseline = 0.0
        # MPL Table 8 gives teacher and student their own dropout rates (None: the model's own).
        self.models["teacher"] = model_factory(**_dropout(teacher_dropout))
        self.models["student"] = model_factory(**_dropout(student_dropout))

    # --- set-up -------------------------------------------------------------------------
    def configure_optimizers(self, make_optimizer):
        self.optimizers["teacher"] = make_optimizer(self.models["teacher"].parameters(), lr=self.teacher_lr)
        self.optimizers["student"] = make_optimizer(self.models["student"].parameters())
        # The finetune phase has its own constant learning rate (paper: 1e-5, momentum 0.9).
        self.optimizers["finetune"] = torch.optim.SGD(self.models["student"].parameters(),
                                                      lr=self.finetune_lr, momentum=0.9)

    def scheduled_optimizers(self):
        return {k: o for k, o in self.optimizers.items() if k != "finetune"}

    def setup(self, total_steps):
        super().setup(total_steps)
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

    # --- one step -----------------------------------------------------------------------
    def step(self, batch):
        self.train()
        t = self.step_index
        self.step_index += 1
        with self.autocast():
            if t >= self.total_steps - self.finetune_steps and self.finetune_steps > 0:
                return self._finetune_step(batch)
            return self._mpl_step(batch, student_active=t >= self.student_wait_steps, t=t)

    def _finetune_step(self, batch):
        loss = F.cross_entropy(self.models["student"](batch.x_l), batch.y_l)
        opt = self.optimizers["finetune"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "loss_finetune": loss.detach()}

    def _teacher_forward(self, batch):
        """One fused teacher pass over labeled, student-view and (with UDA) weak views."""
        teacher = self.models["teacher"]
        use_uda = batch.x_u_strong is not None and self.uda_weight > 0
        student_view = batch.x_u_strong if batch.x_u_strong is not None else batch.x_u
        parts = [batch.x_l, student_view] + ([batch.x_u] if use_uda else [])
        logits = teacher(torch.cat(parts)).split([len(p) for p in parts])
        return logits[0], logits[1], (logits[2] if use_uda else None), student_view

    def _mpl_step(self, batch, student_active: bool, t: int):
        t_logits_l, t_logits_u, t_logits_weak, x_u = self._teacher_forward(batch)
        logs = {}
        teacher_loss = self.supervised_weight * F.cross_entropy(
            t_logits_l, batch.y_l, label_smoothing=self.label_smoothing)
        logs["teacher_sup"] = teacher_loss.detach()
        if t_logits_weak is not None:
            uda, mask = uda_consistency(t_logits_weak, t_logits_u, self.uda_temperature, self.uda_threshold)
            teacher_loss = teacher_loss + self.uda_weight * linear_ramp(t, self.uda_ramp_steps) * uda
            logs.update(teacher_uda=uda.detach(), uda_mask=mask)
        if student_active:
            mpl_term, student_logs = self._student_step_and_feedback(batch, x_u, t_logits_u)
            teacher_loss = teacher_loss + mpl_term
            logs.update(student_logs, teacher_mpl=mpl_term.detach())
        opt = self.optimizers["teacher"]
        opt.zero_grad(set_to_none=True)
        teacher_loss.backward()
        opt.step()
        logs["loss_teacher"] = teacher_loss.detach()
        logs["loss"] = logs.get("loss_u", teacher_loss.detach())
        return logs

    def _student_step_and_feedback(self, batch, x_u, t_logits_u):
        """Student SGD step on the teacher's labels; returns the teacher's MPL term and logs."""
        student, opt = self.models["student"], self.optimizers["student"]
        params = [p for p in student.parameters() if p.requires_grad]
        eta = sgd_update_lr(opt)
        targets = teacher_targets(t_logits_u, self.labels, self.generator)  # (B, C), no gradient

        # One forward over labeled + unlabeled (one BN batch, as the public code); only the
        # unlabeled part is trained on.
        s_logits_u = student(torch.cat([batch.x_l, x_u]))[len(batch.x_l):]
        loss_u = soft_cross_entropy(s_logits_u, targets)
        with torch.no_grad(), frozen_bn_statistics(student):
            # The labeled loss before the step, measured the way L_new is after it: a forward of
            # the labeled batch alone. (Read off the fused forward, as the public code does, batch
            # norm would normalise it with other statistics and bias L_old - L_new.)
            loss_old = F.cross_entropy(student(batch.x_l), batch.y_l)
        g_u = torch.autograd.grad(loss_u, params)
        g_u_flat = flat(g_u)  # a copy, taken before the optimizer reads the gradients
        old_params = [p.detach().clone() for p in params] if self.labels == "soft" else None
        for p, g in zip(params, g_u):
            p.grad = g
        opt.step()

        loss_new = F.cross_entropy(student(batch.x_l), batch.y_l)
        g_l = torch.autograd.grad(loss_new, params)
        g_l_flat = flat(g_l)
        dot = torch.dot(g_l_flat, g_u_flat)
        norms = (g_l_flat.norm() * g_u_flat.norm()).clamp_min(1e-12)
        logs = {"loss_u": loss_u.detach(), "loss_l_old": loss_old, "loss_l_new": loss_new.detach(),
                "h": eta * dot}

        if self.feedback == "none":
            return torch.zeros((), device=loss_u.device), logs
        if self.labels == "soft":
            d = self._labeled_gradient_jvp(old_params, g_l, x_u)  # (B, C)
            q = F.softmax(t_logits_u.float(), dim=-1)
            exact = -(eta / len(x_u)) * (d * q).sum()  # its gradient is dR/dtheta_T exactly
            if self.feedback == "cosine":
                exact = exact / (eta * len(x_u) * norms)
            return exact, logs

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
        ce_teacher = soft_cross_entropy(t_logits_u.float(), targets, reduction="none")
        reduced = ce_teacher.mean() if self.feedback == "cosine" else ce_teacher.sum()
        return h.detach() * reduced, logs

    def _labeled_gradient_jvp(self, old_params, g_l, x_u):
        """d_ik = <g_l, grad_theta_S -log S_k(x_i; theta_S)>: one forward-mode pass through the student."""
        student = self.models["student"]
        names = [n for n, p in student.named_parameters() if p.requires_grad]

        def neg_log_probs(*weights):
            return -F.log_softmax(functional_call(student, dict(zip(names, weights)), (x_u,)), dim=-1)

        _, d = jvp(neg_log_probs, tuple(old_params), tuple(g.detach() for g in g_l))
        return d.detach()
