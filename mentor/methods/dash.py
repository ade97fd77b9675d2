"""Dash: keep the unlabeled examples whose pseudo-label loss is under a threshold that shrinks.

Source: Xu et al. 2021, "Dash: Semi-Supervised Learning with Dynamic Thresholding" (ICML),
Algorithm 1 (REFERENCES.md "The newer pseudo-labelling family"); defaults as USB's ``dash``.
1. Warm-up: ``supervised_steps`` of the labeled loss alone (a step count, or a fraction of the run;
   mentor's default 5%: USB's 2,048 iterations are 0.2% of its 2^20, too short to fit the labeled
   set in a run of a few thousand steps).
2. rho_hat: the mean cross-entropy of the model on the whole labeled set (clean views) at the end
   of the warm-up (the paper's "average loss of the labeled training data"; USB uses its evaluation
   loss instead, which would read the test split).
3. Stage t = 1, 2, ... of ``stage_steps`` each (USB: 10 epochs; default 1% of the run):
   rho_t = max(C gamma^-(t-1) rho_hat, rho_min), C 1.0001, gamma 1.27, rho_min 0.05.
4. Targets: q sharpened at ``target_temperature`` 0.5 (soft) while rho_t > rho_min, then hard labels (USB's switch);
   an example is kept when its loss on its own weak view, CE(target, f(weak(u))), is <= rho_t.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import sharpen
from ..options import POSITIVE, STEPS, WEIGHT, Range
from ..registry import METHODS
from .base import StepOutput, resolve_steps, upcast
from .fixmatch import FixMatch


def dash_rho(stage: int, rho_hat: float, gamma: float = 1.27, c: float = 1.0001, rho_min: float = 0.05) -> float:
    """rho_t for stage t = ``stage`` + 1 (stage 0 is the first after the warm-up)."""
    return max(c * gamma ** -stage * rho_hat, rho_min)


@METHODS.register("dash")
class Dash(FixMatch):
    name = "dash"
    option_ranges = {"target_temperature": POSITIVE, "gamma": Range(1, low_open=True), "c": POSITIVE, "rho_min": Range(0),
                     "supervised_steps": STEPS, "stage_steps": STEPS, "unlabeled_weight": WEIGHT}
    capturable = False
    smoke_hparams = {"supervised_steps": 0}  # the conformance suite's runs are 6 steps long

    def __init__(self, model_factory, num_classes, seed=0, target_temperature: float = 0.5, gamma: float = 1.27,
                 c: float = 1.0001, rho_min: float = 0.05, supervised_steps: float = 0.05,
                 stage_steps: float = 0.01, unlabeled_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed, threshold=0.0, unlabeled_weight=unlabeled_weight)
        if target_temperature <= 0 or gamma <= 1 or rho_min < 0:
            raise ConfigError(f"dash needs target_temperature > 0, gamma > 1 and rho_min >= 0; got "
                              f"{target_temperature}, {gamma}, {rho_min}")
        # q = softmax(f(weak u)) (FixMatch's temperature stays 1); soft targets are q sharpened
        self.target_temperature = float(target_temperature)
        self.gamma, self.c, self.rho_min = float(gamma), float(c), float(rho_min)
        self.supervised_steps, self.stage_steps = supervised_steps, stage_steps
        self.rho_hat = None

    def setup(self, total_steps):
        super().setup(total_steps)
        self.supervised_steps = resolve_steps("supervised_steps", self.supervised_steps, total_steps)
        self.stage_steps = max(1, resolve_steps("stage_steps", self.stage_steps, total_steps))
        self.hparams.update(supervised_steps=self.supervised_steps, stage_steps=self.stage_steps)

    def rho(self) -> float:
        stage = max(0, self.step_index - self.supervised_steps) // self.stage_steps
        return dash_rho(stage, self.rho_hat, self.gamma, self.c, self.rho_min)

    def labeled_loss(self, batch) -> float:
        """The model's mean cross-entropy on the whole labeled set (the current batch without one)."""
        model = self.models["model"]
        was_training = model.training
        model.eval()
        with torch.no_grad(), self.autocast():
            if self.labeled_pool is None:
                loss = F.cross_entropy(upcast(model(batch.x_l)), batch.y_l)
            else:
                pool = self.labeled_pool
                losses = [F.cross_entropy(upcast(model(pool.transform(pool.x[i:i + 256]))), pool.y[i:i + 256],
                                          reduction="sum") for i in range(0, len(pool.y), 256)]
                loss = torch.stack(losses).sum() / len(pool.y)
        model.train(was_training)
        return float(loss)

    def unlabeled_targets(self, probs):
        if self.rho() <= self.rho_min:
            return probs.argmax(dim=-1)
        return sharpen(probs, self.target_temperature)

    def confidence_weights(self, probs, batch, logits_l):
        targets = self.unlabeled_targets(probs)
        if targets.dim() == 1:
            targets = F.one_hot(targets, self.num_classes).float()
        weak_loss = -(targets * probs.clamp_min(1e-12).log()).sum(-1)
        return (weak_loss <= self.rho()).float()

    def loss(self, batch):
        if self.step_index < self.supervised_steps:
            loss_l = F.cross_entropy(upcast(self.models["model"](batch.x_l)), batch.y_l)
            return StepOutput(loss_l, {"loss_l": loss_l.detach()})
        if self.rho_hat is None:
            self.rho_hat = self.labeled_loss(batch)
        out = super().loss(batch)
        out.logs["rho"] = torch.tensor(self.rho())
        return out

    def extra_state(self):
        return {"rho_hat": self.rho_hat}

    def load_extra_state(self, state):
        self.rho_hat = state["rho_hat"]
