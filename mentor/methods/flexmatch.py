"""FlexMatch: FixMatch with per-class thresholds from each class's learning effect (curriculum
pseudo-labelling).

Source: Zhang et al. 2021, "FlexMatch: Boosting Semi-Supervised Learning with Curriculum Pseudo
Labeling" (NeurIPS), section 3 (REFERENCES.md "The newer pseudo-labelling family"). State: the
last confident prediction of every example of the pool, ``selected`` (-1: never above tau).
- learning effect sigma(c) = number of pool examples whose last prediction above tau is c;
- beta(c) = sigma(c) / max(max_c sigma, N - sum_c sigma) with threshold warm-up (the unused
  count in the normaliser, eq. 11), or sigma(c) / max_c sigma without (``warmup=false``);
- threshold T(c) = M(beta(c)) tau with the convex mapping M(x) = x / (2 - x) (eq. 7, the paper's
  best); an example is trusted when max q >= T(argmax q);
- then every example of the batch with max q >= tau records argmax q in ``selected``, and beta is
  recomputed for the next step (USB's order: this step's mask uses the thresholds of the counts
  before it). At the start beta is 0 everywhere, so the thresholds start at 0 and rise as classes
  are learned: that is the curriculum, as in the paper and USB.
Defaults: tau 0.95, hard labels, lambda_u 1 (the paper's and USB's ``flexmatch_cifar10``).
Under torchrun the indices and predictions of the whole global batch are recorded on every rank.
"""
from __future__ import annotations

import torch

from ..registry import METHODS
from .fixmatch import FixMatch


def flexmatch_beta(selected: torch.Tensor, num_classes: int, warmup: bool = True) -> torch.Tensor:
    """beta(c) from the per-example last confident predictions (-1: none)."""
    counts = torch.bincount(selected + 1, minlength=num_classes + 1).float()
    unused, sigma = counts[0], counts[1:]
    normaliser = torch.maximum(sigma.max(), unused) if warmup else sigma.max()
    return sigma / normaliser.clamp_min(1.0)


def convex_mapping(beta: torch.Tensor) -> torch.Tensor:
    return beta / (2.0 - beta)


@METHODS.register("flexmatch")
class FlexMatch(FixMatch):
    name = "flexmatch"
    capturable = False
    smoke_hparams = {}  # thresholds start at 0: the unlabeled term is active from the first step

    def __init__(self, model_factory, num_classes, seed=0, threshold: float = 0.95, warmup: bool = True,
                 **options):
        super().__init__(model_factory, num_classes, seed, threshold=threshold, **options)
        self.warmup = bool(warmup)
        self.selected = None  # (N_u,) long, created at the first step (num_unlabeled is known then)
        self.beta = torch.zeros(num_classes)

    def class_thresholds(self) -> torch.Tensor:
        return self.threshold * convex_mapping(self.beta)

    def confidence_weights(self, probs, batch, logits_l):
        confidence, predicted = probs.max(dim=-1)
        if self.selected is None:
            self.selected = torch.full((max(self.num_unlabeled, int(batch.idx_u.max()) + 1),), -1, dtype=torch.long,
                                       device=probs.device)
        self.beta = self.beta.to(probs.device)
        weights = (confidence >= self.class_thresholds()[predicted]).float()
        # record the global batch's confident predictions, then the thresholds for the next step
        idx = self.collective.all_gather(batch.idx_u.to(probs.device))
        confidence, predicted = self.collective.all_gather(confidence), self.collective.all_gather(predicted)
        confident = confidence >= self.threshold
        self.selected[idx] = torch.where(confident, predicted, self.selected[idx])  # no host sync
        self.beta = flexmatch_beta(self.selected, self.num_classes, self.warmup)
        return weights

    def extra_state(self):
        return {"selected": None if self.selected is None else self.selected.cpu(), "beta": self.beta.cpu()}

    def load_extra_state(self, state):
        self.selected, self.beta = state["selected"], state["beta"]
        if self.selected is not None:
            device = next(self.models.parameters()).device
            self.selected, self.beta = self.selected.to(device), self.beta.to(device)
