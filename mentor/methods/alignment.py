"""What every pseudo-labelling method may do to its pseudo-labels before it trusts them:
distribution alignment and debiasing, written once and shared.

Both rescale the weak view's class probabilities q by a running estimate of the class marginal of
the model's own predictions on unlabeled data, p~ (the mean of q over recent batches):
- **Distribution alignment** (ReMixMatch, Berthelot et al. 2020, section 3.2; AdaMatch, Berthelot
  et al. 2022, section 3.2): q <- Normalize(q x p_target / p~). ``dist_align`` names p_target:
  ``labeled`` (ReMixMatch: the labeled set's class frequencies; ``true`` means this form),
  ``labeled_predictions`` (AdaMatch: a running mean of the model's predictions on the labeled weak
  view, so that both sides carry the same calibration), ``uniform`` (SoftMatch's uniform
  alignment, SimMatch's and CoMatch's). p~ is the mean over the last ``dist_align_window`` batches
  (ReMixMatch: 128; USB's SimMatch/CoMatch queue: 32) or, with ``dist_align_window=0``, an EMA of
  momentum ``dist_align_momentum`` started from the first batch's mean (USB's AdaMatch/SoftMatch hook).
- **Debiasing** (DebiasPL, Wang et al. 2022, "Debiased Learning from Naturally Imbalanced
  Pseudo-Labels", eq. 4): pseudo-labels from logits - lambda log p^, p^ an EMA (momentum
  ``debias_momentum``, 0.999) of the mean prediction on unlabeled data. On probabilities this is
  q <- Normalize(q x p^^-lambda), which is how it is applied here (after any temperature the
  method uses). ``debias`` is lambda (0: off; the paper's 0.5 ... 1.0 range; ~0.4 a common choice).
  DebiasPL's second part, the adaptive-margin loss on the strong view, is not included: it changes
  each method's loss, not its pseudo-labels.
Alignment runs first, then debiasing, each updating its estimate with the current batch first (as
USB's hooks do). Every estimate is over the global batch under torchrun (``collective.mean``) and
lives in the method's state dict.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from ..errors import ConfigError
from ..options import MOMENTUM, WEIGHT, Choice, Range

DIST_ALIGN_TARGETS = ("none", "labeled", "labeled_predictions", "uniform")

# The shared options, with their defaults; a method may declare other defaults
# (``Method.pseudo_label_defaults``: SoftMatch aligns to uniform, AdaMatch to labeled predictions).
OPTIONS: Dict[str, object] = {"dist_align": "none", "dist_align_window": 128, "dist_align_momentum": 0.999,
                              "debias": 0.0, "debias_momentum": 0.999}
OPTION_RANGES: Dict[str, object] = {"dist_align": Choice(*DIST_ALIGN_TARGETS, True, False, "true", "false"),
                                    "dist_align_window": Range(0, integer=True), "dist_align_momentum": MOMENTUM,
                                    "debias": WEIGHT, "debias_momentum": MOMENTUM}


class SingleProcess:
    """The collectives a method's statistics use, on one process (mentor.train.distributed's
    Context gives the same over every rank of a torchrun run)."""

    world = 1

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        return t


class ClassMarginal:
    """A running estimate of a class marginal from batch means: the mean of the last ``window``
    batch means, or (``window`` 0) an EMA of ``momentum`` started from the first batch mean, or
    a fixed start ``initial`` (AdaMatch's labeled target starts uniform)."""

    def __init__(self, num_classes: int, window: int = 0, momentum: float = 0.999,
                 initial: Optional[torch.Tensor] = None):
        if int(window) < 0:
            raise ConfigError(f"a class-marginal window is a number of batches >= 0 (0: EMA), got {window}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"a class-marginal momentum must be in [0, 1), got {momentum}")
        self.window, self.momentum = int(window), float(momentum)
        self.history = torch.empty(0, num_classes)  # window form: the last batch means
        self.value = None if initial is None else initial.clone().float()

    def update(self, batch_mean: torch.Tensor) -> torch.Tensor:
        batch_mean = batch_mean.detach().float()
        if self.window:
            self.history = torch.cat([self.history.to(batch_mean.device), batch_mean[None]])[-self.window:]
            self.value = self.history.mean(0)
        elif self.value is None:
            self.value = batch_mean.clone()
        else:
            self.value = self.momentum * self.value.to(batch_mean.device) + (1 - self.momentum) * batch_mean
        return self.value

    def state_dict(self) -> dict:
        return {"history": self.history.cpu(), "value": None if self.value is None else self.value.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.value = state["history"], state["value"]


def rescale(probs: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Each row of ``probs`` times ``factor`` (per class), renormalised."""
    scaled = probs * factor
    return scaled / scaled.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def align_distribution(probs: torch.Tensor, target: torch.Tensor, model_marginal: torch.Tensor) -> torch.Tensor:
    """Distribution alignment: probs x p_target / p~, each row renormalised."""
    return rescale(probs, target / model_marginal.clamp_min(1e-6))


class PseudoLabelAdjustment:
    """The shared options of a pseudo-labelling method (see the module docstring) and their state."""

    def __init__(self, num_classes: int, dist_align="none", dist_align_window: int = 128,
                 dist_align_momentum: float = 0.999, debias: float = 0.0, debias_momentum: float = 0.999):
        if dist_align is True or dist_align == "true":
            dist_align = "labeled"
        elif dist_align is False or dist_align is None or dist_align == "false":
            dist_align = "none"
        if dist_align not in DIST_ALIGN_TARGETS:
            raise ConfigError(f"unknown dist_align {dist_align!r}; choose one of {', '.join(DIST_ALIGN_TARGETS)} "
                              "(true: labeled)")
        if isinstance(debias, bool) or not isinstance(debias, (int, float)) or debias < 0:
            raise ConfigError(f"debias is DebiasPL's lambda >= 0 (0: off), got {debias!r}")
        self.num_classes, self.dist_align, self.debias = num_classes, dist_align, float(debias)
        self.options = {"dist_align": dist_align, "dist_align_window": int(dist_align_window),
                        "dist_align_momentum": float(dist_align_momentum), "debias": float(debias),
                        "debias_momentum": float(debias_momentum)}
        self.model_marginal = ClassMarginal(num_classes, dist_align_window, dist_align_momentum)
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.labeled_marginal = ClassMarginal(num_classes, 0, dist_align_momentum, initial=uniform)
        self.debias_marginal = ClassMarginal(num_classes, 0, debias_momentum, initial=uniform)

    @property
    def active(self) -> bool:
        return self.dist_align != "none" or self.debias > 0

    def __call__(self, probs: torch.Tensor, collective=SingleProcess(),
                 label_frequencies: Optional[Callable[[], torch.Tensor]] = None,
                 labeled_probs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """q adjusted: Normalize(q x exp(log_factor(q)))."""
        if not self.active:
            return probs
        probs = probs.detach().float()
        return rescale(probs, self.log_factor(probs, collective, label_frequencies, labeled_probs).exp())

    def log_factor(self, probs: torch.Tensor, collective=SingleProcess(),
                   label_frequencies: Optional[Callable[[], torch.Tensor]] = None,
                   labeled_probs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The per-class log of the factor that adjusts q, after updating the estimates with this
        batch. Adding it to logits adjusts their softmax the same way (Meta Pseudo Labels' teacher
        keeps its gradient so). ``label_frequencies()`` gives the labeled set's class frequencies
        (for ``labeled``); ``labeled_probs`` the model's predictions on the labeled weak view (for
        ``labeled_predictions``)."""
        probs = probs.detach().float()
        log_factor = torch.zeros(probs.shape[-1], device=probs.device)
        raw_mean = collective.mean(probs.mean(0))
        if self.dist_align != "none":
            model_marginal = self.model_marginal.update(raw_mean)
            if self.dist_align == "uniform":
                target = torch.full_like(model_marginal, 1.0 / self.num_classes)
            elif self.dist_align == "labeled":
                if label_frequencies is None:
                    raise ConfigError("dist_align=labeled aligns to the labeled set's class frequencies, which this "
                                      "run does not give the method (the Trainer does)")
                target = label_frequencies().to(probs.device).float()
            else:
                if labeled_probs is None:
                    raise ConfigError("dist_align=labeled_predictions needs the model's predictions on the labeled "
                                      "batch; this method does not compute them (use dist_align=labeled)")
                target = self.labeled_marginal.update(collective.mean(labeled_probs.detach().float().mean(0)))
            log_factor = log_factor + target.clamp_min(1e-12).log() - model_marginal.clamp_min(1e-6).log()
        if self.debias > 0:
            marginal = self.debias_marginal.update(raw_mean)
            log_factor = log_factor - self.debias * marginal.clamp_min(1e-6).log()
        return log_factor

    def state_dict(self) -> dict:
        return {"model": self.model_marginal.state_dict(), "labeled": self.labeled_marginal.state_dict(),
                "debias": self.debias_marginal.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model_marginal.load_state_dict(state["model"])
        self.labeled_marginal.load_state_dict(state["labeled"])
        self.debias_marginal.load_state_dict(state["debias"])
