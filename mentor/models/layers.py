"""Small building blocks shared by the convolutional models."""
from __future__ import annotations

import contextlib
from typing import List

import torch
from torch import nn

from ..errors import ConfigError, check_unit_interval


class ReplayableNoise:
    """A random layer whose draw can be recorded in one forward and replayed in another.

    ``noise_mode`` is None (draw afresh, the layer's usual behaviour), "record" (draw afresh and
    keep the draw) or "replay" (reuse the kept draw). Meta Pseudo Labels replays the noise of the
    student's step forward in the Jacobian-vector product of its feedback: the same dropout
    masks, whatever the backend (eager, torch.compile, CUDA graphs), where re-seeding the global
    generator would depend on how a compiled graph consumes random numbers."""

    noise_mode = None
    recorded = None


class ReplayableDropout(ReplayableNoise, nn.Dropout):
    """nn.Dropout that can record and replay its mask (see ReplayableNoise). Its fresh draws are
    those of nn.Dropout: torch.native_dropout is the kernel F.dropout runs, so a recorded forward
    gives the numbers of an unrecorded one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.noise_mode is None:
            return super().forward(x)
        if self.noise_mode == "replay":
            return x * self.recorded * (1.0 / (1.0 - self.p))
        out, self.recorded = torch.native_dropout(x, self.p, True)
        return out


class DropPath(ReplayableNoise, nn.Module):
    """Stochastic depth (Huang et al. 2016; Noisy Student's "stochastic depth"): in training,
    drop the residual branch of a whole example with probability p and scale survivors by
    1/(1-p), so the expected output is unchanged. Identity in eval mode. Replayable."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = check_unit_interval("stochastic depth", p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.noise_mode == "replay":
            keep = self.recorded
        else:
            keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= self.p
            if self.noise_mode == "record":
                self.recorded = keep
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# Random layers of torch that have no replayable form here.
_UNREPLAYABLE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def make_noise_replayable(model: nn.Module) -> List[ReplayableNoise]:
    """Turns the model's plain nn.Dropout layers into ReplayableDropout (the same layer: no state,
    the same draws) and returns its replayable layers; a random layer that cannot replay is an error."""
    layers = []
    for name, module in model.named_modules():
        if type(module) is nn.Dropout:
            module.__class__ = ReplayableDropout
        elif isinstance(module, _UNREPLAYABLE):
            raise ConfigError(f"layer {name!r} ({type(module).__name__}) draws noise that cannot be replayed; "
                              "use nn.Dropout or mentor.models.layers.DropPath")
        if isinstance(module, ReplayableNoise):
            layers.append(module)
    return layers


@contextlib.contextmanager
def noise_mode(layers: List[ReplayableNoise], mode: str):
    """Inside: the layers record ("record") or replay ("replay") their noise."""
    for layer in layers:
        layer.noise_mode = mode
    try:
        yield
    finally:
        for layer in layers:
            layer.noise_mode = None


def set_stochastic_depth(model: nn.Module, final_drop: float) -> int:
    """Noisy Student's stochastic depth: the i-th of the model's n DropPath layers (in module
    order, input to output) drops its residual branch with probability final_drop * i / n, a
    linear decay of the survival probability to 1 - final_drop at the last block. Returns n
    (0 for models without residual blocks, which are left unchanged)."""
    check_unit_interval("stochastic depth", final_drop)
    layers = [m for m in model.modules() if isinstance(m, DropPath)]
    for i, layer in enumerate(layers, start=1):
        layer.p = final_drop * i / len(layers)
    return len(layers)


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module):
    """Forward passes inside leave batch-norm running statistics as they were (momentum 0),
    for extra passes that must not leak into evaluation (VAT's perturbations, MPL's L_old)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The model's classifier: its last nn.Linear in module order (every model here ends in one)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{type(model).__name__} has no linear classifier to read features from")
    return linears[-1]


def features_and_logits(model: nn.Module, x: torch.Tensor):
    """(features, logits): the input of the model's classifier (the penultimate representation,
    for Label Propagation's graph and ReMixMatch's rotation head) and its output, from one forward."""
    captured = []
    handle = classifier_layer(model).register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return captured[-1], logits


def feature_dim(model: nn.Module) -> int:
    """The width of the features ``features_and_logits`` returns (the classifier's input), for
    every model here and every timm model: heads on the features are sized from it."""
    return classifier_layer(model).in_features


def projection_head(model: nn.Module, out_dim: int, hidden: int = 0) -> nn.Sequential:
    """A two-layer MLP on the model's features (SimCLR's projection head, as SimMatch, CoMatch
    and CRMatch put on the backbone): features -> ``hidden`` (default: the feature width) -> ReLU
    -> ``out_dim``."""
    width = feature_dim(model)
    hidden = hidden or width
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
