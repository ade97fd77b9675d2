"""WideResNet (Zagoruyko & Komodakis) in the variant FixMatch, UDA and MPL use on CIFAR/SVHN.

REFERENCES.md "WideResNet-28-2": pre-activation basic blocks, widths 16 -> 16k / 32k / 64k,
(depth - 4) / 6 blocks per stage, leaky ReLU 0.1, batch norm momentum 0.001 (TensorFlow decay
0.999; MPL Table 8 uses decay 0.99, i.e. bn_momentum=0.01). wrn28_2 has 1.47M parameters.
Options: dropout before the classifier (MPL), dropout inside blocks, stochastic depth with
the drop probability growing linearly to ``stochastic_depth`` at the last block (Noisy Student).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..registry import MODELS
from .layers import DropPath, set_stochastic_depth


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, bn_momentum: float, block_dropout: float,
                 drop_path: float, activate_before_residual: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.dropout = nn.Dropout(block_dropout) if block_dropout else nn.Identity()
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
        self.drop_path = DropPath(drop_path)
        # The first block feeds the activated input to its shortcut too (FixMatch's TensorFlow WRN).
        self.activate_before_residual = activate_before_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.act(self.bn2(out))))
        identity = x if self.shortcut is None else self.shortcut(pre if self.activate_before_residual else x)
        return identity + self.drop_path(out)


class WideResNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 28, width: int = 2,
                 dropout: float = 0.0, block_dropout: float = 0.0, stochastic_depth: float = 0.0,
                 bn_momentum: float = 0.001):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"WideResNet takes images (channels, height, width), got input shape {tuple(input_shape)}")
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(f"WideResNet depth must be 6n + 4 (e.g. 28), got {depth}")
        if width < 1:
            raise ConfigError(f"WideResNet width must be >= 1, got {width}")
        check_unit_interval("dropout", dropout)
        check_unit_interval("stochastic_depth", stochastic_depth)
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)
        blocks, index = [], 0
        for stage in range(3):
            for i in range(n):
                index += 1
                blocks.append(BasicBlock(widths[stage] if i == 0 else widths[stage + 1], widths[stage + 1],
                                         (1 if stage == 0 else 2) if i == 0 else 1, bn_momentum, block_dropout,
                                         0.0, activate_before_residual=index == 1))
        self.blocks = nn.Sequential(*blocks)
        set_stochastic_depth(self.blocks, stochastic_depth)  # growing linearly to stochastic_depth at the last block
        self.bn = nn.BatchNorm2d(widths[3], momentum=bn_momentum)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.blocks(self.stem(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


@MODELS.register("wrn")
def wrn(input_shape, num_classes, **options) -> WideResNet:
    return WideResNet(input_shape, num_classes, **options)


@MODELS.register("wrn28_2")
def wrn28_2(input_shape, num_classes, **options) -> WideResNet:
    return WideResNet(input_shape, num_classes, **{"depth": 28, "width": 2, **options})


@MODELS.register("wrn28_8")
def wrn28_8(input_shape, num_classes, **options) -> WideResNet:
    return WideResNet(input_shape, num_classes, **{"depth": 28, "width": 8, **options})
