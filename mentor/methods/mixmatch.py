"""MixMatch: guessed labels of augmented unlabeled data, sharpened, mixed up with the labeled batch.

Source: Berthelot et al. 2019, "MixMatch: A Holistic Approach to Semi-Supervised Learning"
(survey seed 004, section "MixMatch"; REFERENCES.md "Other methods"). Per step (Algorithm 1):
1. x_hat: the labeled batch, augmented, with one-hot labels; u_hat_k: K = 2 augmentations of
   each unlabeled example (the stream's two independent weak views).
2. Label guess: q = Sharpen(mean_k softmax(f(u_hat_k)), T), T = 0.5, without gradient.
3. W = shuffle(x_hat ++ u_hat_1 ++ u_hat_2) with their targets; each example i is mixed with W_i:
   lam ~ Beta(alpha, alpha), lam' = max(lam, 1 - lam) (alpha = 0.75), so mixing a labeled
   example keeps it closer to itself.
4. Loss = CE(mixed targets, f(mixed labeled part)) + lambda_u(t) x mean squared error between
   softmax(f(mixed unlabeled part)) and its mixed targets (mean over classes, as the paper's
   code; lambda_u = 75 on CIFAR-10), lambda_u ramped in linearly (paper: over 16k steps).
All mixed inputs go through one train-mode forward (one batch-norm batch).

Defaults: the paper's T, K and ramp shape, but ``mixup_alpha=0.3`` and ``unlabeled_weight=10``
in place of CIFAR-10's 0.75 and 75, chosen on a validation split (bench/mpl.py ablation,
BENCHMARKS.md "The survey's methods"): with the CIFAR-10 values the mlp on Fashion-MNIST-1000
ended 6.3 points under supervised training (validation, 1,500 steps); with these it is level
with it, and on digits it stays 7-10 points above it. ``--hp mixup_alpha=0.75
unlabeled_weight=75`` gives the paper's CIFAR-10 recipe.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..augment import mixup
from ..errors import ConfigError
from ..losses import linear_ramp, sharpen, soft_cross_entropy
from ..options import POSITIVE, STEPS, WEIGHT
from ..registry import METHODS
from .base import Method, StepOutput, resolve_steps, upcast


def guess_labels(model, views: Sequence[torch.Tensor], temperature: float, adjust=None) -> torch.Tensor:
    """MixMatch's label guess: the sharpened mean of the model's predictions on K views (no
    gradient); ``adjust`` (the shared dist_align / debias) acts on the mean before sharpening."""
    with torch.no_grad():
        probs = torch.stack([F.softmax(upcast(model(v)), dim=-1) for v in views]).mean(0)
        if adjust is not None:
            probs = adjust(probs)
    return sharpen(probs, temperature)


def mix_batches(inputs: List[torch.Tensor], targets: List[torch.Tensor], alpha: float,
                generator: torch.Generator, per_example: bool = True) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """MixUp of every example of the concatenated batches with a partner drawn from the whole
    concatenation (W = a shuffled copy of it); ``per_example``: MixMatch's lam' = max(lam, 1 - lam)
    drawn per example, else one lam for the batch (Zhang et al.'s mixup). Returns the mixed
    inputs and targets split back into the given parts."""
    sizes = [len(x) for x in inputs]
    x_mix, t_mix, _ = mixup(torch.cat(inputs), torch.cat(targets), alpha, generator, per_example=per_example)
    return list(x_mix.split(sizes)), list(t_mix.split(sizes))


def check_mixmatch_options(temperature: float, mixup_alpha: float, unlabeled_weight: float) -> None:
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if mixup_alpha <= 0:
        raise ConfigError(f"mixup_alpha must be positive, got {mixup_alpha}")
    if unlabeled_weight < 0:
        raise ConfigError(f"unlabeled_weight must be >= 0, got {unlabeled_weight}")


@METHODS.register("mixmatch")
class MixMatch(Method):
    name = "mixmatch"
    option_ranges = {"temperature": POSITIVE, "mixup_alpha": POSITIVE, "unlabeled_weight": WEIGHT, "ramp_steps": STEPS}
    strong_view = "unused"
    second_view = True  # K = 2 augmentations of each unlabeled example
    makes_pseudo_labels = True  # dist_align / debias apply to the label guess

    def __init__(self, model_factory, num_classes, seed=0, temperature: float = 0.5, mixup_alpha: float = 0.3,
                 unlabeled_weight: float = 10.0, ramp_steps: float = 0.25):
        super().__init__(model_factory, num_classes, seed)
        check_mixmatch_options(temperature, mixup_alpha, unlabeled_weight)
        self.temperature, self.mixup_alpha = temperature, mixup_alpha
        self.unlabeled_weight, self.ramp_steps = unlabeled_weight, ramp_steps
        self.models["model"] = model_factory()

    def setup(self, total_steps):
        super().setup(total_steps)
        self.ramp_steps = resolve_steps("ramp_steps", self.ramp_steps, total_steps)
        self.hparams["ramp_steps"] = self.ramp_steps

    def loss(self, batch):
        model = self.models["model"]
        views_u = [batch.x_u, batch.x_u_alt]
        q = guess_labels(model, views_u, self.temperature, self.adjust_pseudo_labels)
        p = F.one_hot(batch.y_l, self.num_classes).float()
        (x_l, *x_u), (t_l, *t_u) = mix_batches([batch.x_l, *views_u], [p, q, q], self.mixup_alpha, self.generator)
        logits = upcast(model(torch.cat([x_l, *x_u])))
        logits_l, logits_u = logits[:len(x_l)], logits[len(x_l):]
        loss_l = soft_cross_entropy(logits_l, t_l)
        loss_u = ((F.softmax(logits_u, dim=-1) - torch.cat(t_u)) ** 2).mean()
        weight = self.unlabeled_weight * linear_ramp(self.step_index, self.ramp_steps)
        return StepOutput(loss_l + weight * loss_u, {"loss_l": loss_l.detach(), "loss_u": loss_u.detach()})
