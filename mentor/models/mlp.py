"""Fully connected classifier with configurable widths, activation and initialisation."""
from __future__ import annotations

import inspect
import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..registry import MODELS

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


def wider_options(name: str, options: dict, factor: float) -> dict:
    """Model options for the same architecture ``factor`` times wider (a larger Noisy Student
    student): the mlp's hidden widths, small_cnn's channel widths, a WideResNet's width k
    (wrn28_2 x 4 = WRN-28-8). Other models have no width to scale: an error says so."""
    if factor == 1:
        return dict(options)
    if factor <= 0:
        raise ConfigError(f"width factor must be positive, got {factor}")
    model = MODELS.get(name)
    signature = inspect.signature(model)
    if name.startswith("wrn"):
        default = {"wrn28_2": 2, "wrn28_8": 8}.get(name, signature.parameters["width"].default
                                                   if "width" in signature.parameters else 2)
        return {**options, "width": max(1, round(options.get("width", default) * factor))}
    for key in ("hidden", "widths"):
        if key in signature.parameters:
            widths = options.get(key, signature.parameters[key].default)
            return {**options, key: [max(1, round(int(w) * factor)) for w in widths]}
    raise ConfigError(f"model {name!r} has no width option to scale; give the student's options explicitly")


def create_model(name: str, input_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    try:
        return MODELS.get(name)(input_shape, num_classes, **options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
