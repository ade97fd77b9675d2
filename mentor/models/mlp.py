"""Fully connected classifier with configurable widths, activation and initialisation."""
from __future__ import annotations

import inspect
import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..registry import MODELS
from .layers import DropPath, set_stochastic_depth

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
               "leaky_relu": lambda: nn.LeakyReLU(0.1)}


def _parse_init(init: str):
    """'default' (PyTorch's) or 'uniform:A' for U(-A, A) on weights and biases (MPL section 3.1)."""
    if init == "default":
        return None
    if init.startswith("uniform:"):
        try:
            bound = float(init.split(":", 1)[1])
        except ValueError:
            bound = math.nan
        if not bound > 0:
            raise ConfigError(f"init {init!r}: the bound after 'uniform:' must be a positive number")
        return bound
    raise ConfigError(f"unknown init {init!r}; use 'default' or 'uniform:A'")


@MODELS.register("mlp")
class MLP(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (64, 64),
                 activation: str = "relu", init: str = "default", dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        check_unit_interval("dropout", dropout)
        in_features = int(math.prod(input_shape))
        layers = [nn.Flatten()]
        if isinstance(hidden, (int, float)):  # --model-hp hidden=16: one hidden layer
            hidden = [hidden]
        for width in hidden:
            layers += [nn.Linear(in_features, int(width)), ACTIVATIONS[activation]()]
            in_features = int(width)
        # Dropout on the features entering the classifier, as in the other models here and in
        # the papers' WideResNets (MPL Table 8, Noisy Student's "dropout on the final layer").
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_features, num_classes))
        self.net = nn.Sequential(*layers)
        bound = _parse_init(init)
        if bound is not None:
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualBlock(nn.Module):
    """Pre-norm residual block, x + DropPath(Linear(ReLU(Linear(LayerNorm(x))))): the branch of
    a whole example is dropped by stochastic depth in training."""

    def __init__(self, width: int, activation: str):
        super().__init__()
        self.branch = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), ACTIVATIONS[activation](),
                                    nn.Linear(width, width))
        self.drop_path = DropPath(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.branch(x))


@MODELS.register("residual_mlp")
class ResidualMLP(nn.Module):
    """A fully connected network of residual blocks: a linear stem to ``width`` features,
    ``blocks`` residual blocks, LayerNorm and the activation, dropout, the classifier. It gives
    feature data and small images what the mlp lacks for Noisy Student's noise: residual
    branches that stochastic depth can drop (linear decay to ``stochastic_depth`` at the last
    block, as in the WideResNet). LayerNorm, not batch norm, so a prediction never depends on
    the other examples of its batch."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 64, blocks: int = 2,
                 activation: str = "relu", dropout: float = 0.0, stochastic_depth: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if int(width) < 1 or int(blocks) < 1:
            raise ConfigError(f"residual_mlp needs width >= 1 and blocks >= 1, got width={width}, blocks={blocks}")
        check_unit_interval("dropout", dropout)
        width = int(width)
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(int(math.prod(input_shape)), width))
        self.blocks = nn.Sequential(*(ResidualBlock(width, activation) for _ in range(int(blocks))))
        set_stochastic_depth(self.blocks, stochastic_depth)
        self.head = nn.Sequential(nn.LayerNorm(width), ACTIVATIONS[activation](),
                                  nn.Dropout(dropout) if dropout else nn.Identity(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def wider_options(name: str, options: dict, factor: float) -> dict:
    """Model options for the same architecture ``factor`` times wider (a larger Noisy Student
    student): the mlp's hidden widths, small_cnn's channel widths, residual_mlp's width, a
    WideResNet's width k (wrn28_2 x 4 = WRN-28-8). Other models have no width to scale: an error says so."""
    if factor == 1:
        return dict(options)
    if factor <= 0:
        raise ConfigError(f"width factor must be positive, got {factor}")
    if name.startswith("timm:"):
        raise ConfigError(f"model {name!r} has no width option to scale; name a larger timm model for the student "
                          "(student_model_options={'model': 'timm:...'}) or keep the width factor 1")
    model = MODELS.get(name)
    signature = inspect.signature(model)
    if name.startswith("wrn"):
        default = {"wrn28_2": 2, "wrn28_8": 8}.get(name, signature.parameters["width"].default
                                                   if "width" in signature.parameters else 2)
        return {**options, "width": max(1, round(options.get("width", default) * factor))}
    for key in ("hidden", "widths"):
        if key in signature.parameters:
            widths = options.get(key, signature.parameters[key].default)
            widths = [widths] if isinstance(widths, (int, float)) else widths
            return {**options, key: [max(1, round(int(w) * factor)) for w in widths]}
    if "width" in signature.parameters:
        width = options.get("width", signature.parameters["width"].default)
        return {**options, "width": max(1, round(int(width) * factor))}
    raise ConfigError(f"model {name!r} has no width option to scale; give the student's options explicitly")
