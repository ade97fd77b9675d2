"""Convolutional networks for images smaller than a WideResNet needs.

- ``cnn13``: the 13-layer ConvNet of Temporal Ensembling / Mean Teacher (Laine & Aila 2017,
  Tarvainen & Valpola 2017, "ConvNet-Large"): 3x(128) pool drop 3x(256) pool drop 512-256-128,
  leaky ReLU 0.1 and batch norm after every convolution, global average pooling.
- ``small_cnn``: three conv-BN-ReLU stages and a linear head; trains Fashion-MNIST on two CPU
  cores in minutes, for tests and CPU benchmarks.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..registry import MODELS


def _conv_bn(cin: int, cout: int, kernel: int, padding: int, slope: float) -> list:
    return [nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout),
            nn.LeakyReLU(slope) if slope else nn.ReLU()]


def _check_image_shape(name: str, input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"{name} takes images (channels, height, width), got input shape {tuple(input_shape)}")


@MODELS.register("cnn13")
class CNN13(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, dropout: float = 0.5):
        super().__init__()
        _check_image_shape("cnn13", input_shape)
        check_unit_interval("dropout", dropout)
        c = input_shape[0]
        layers = []
        for cin, cout in ((c, 128), (128, 128), (128, 128)):
            layers += _conv_bn(cin, cout, 3, 1, 0.1)
        layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
        for cin, cout in ((128, 256), (256, 256), (256, 256)):
            layers += _conv_bn(cin, cout, 3, 1, 0.1)
        layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
        layers += _conv_bn(256, 512, 3, 0, 0.1) + _conv_bn(512, 256, 1, 0, 0.1) + _conv_bn(256, 128, 1, 0, 0.1)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("small_cnn")
class SmallCNN(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (32, 64, 128),
                 dropout: float = 0.0):
        super().__init__()
        _check_image_shape("small_cnn", input_shape)
        check_unit_interval("dropout", dropout)
        layers, cin = [], input_shape[0]
        for i, width in enumerate(widths):
            layers += _conv_bn(cin, int(width), 3, 1, 0.0)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = int(width)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))
