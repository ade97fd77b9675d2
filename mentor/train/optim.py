"""The optimizers of a run: SGD, Nesterov, Adam or AdamW over parameter groups by learning-rate
scale (layer-wise decay, the backbone's scale) and weight decay (none for biases, norms and what
a model exempts)."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..models.layers import classifier_layer
from ..models.pretrained import layer_groups
from .config import TrainConfig


def make_optimizer(config: TrainConfig, params, lr: Optional[float] = None,
                   lr_scales: Optional[Dict[int, float]] = None, no_decay: frozenset = frozenset()) -> torch.optim.Optimizer:
    """SGD, Nesterov, Adam or AdamW. Weight decay skips batch-norm parameters and biases (every
    tensor of one dimension), as FixMatch does, unless config.decay_bn_and_bias. ``lr_scales``
    ({id(parameter): multiplier}, from layer-wise decay and the backbone scale) splits the
    parameters into groups by rate, the largest rate first (the classifier's: MPL reads the
    student's rate from the first group). A parameter scaled to 0 is frozen. ``no_decay``: ids of
    parameters a model exempts from weight decay (a timm ViT's position embedding and class
    token, its ``no_weight_decay()``, as timm and USB exempt them)."""
    lr = config.lr if lr is None else lr
    params = [p for p in params if p.requires_grad]
    scales = lr_scales or {}
    groups: Dict[tuple, dict] = {}
    for p in params:
        scale = scales.get(id(p), 1.0)
        if scale == 0:
            continue
        decay = config.weight_decay if config.decay_bn_and_bias or (p.ndim > 1 and id(p) not in no_decay) else 0.0
        group = groups.setdefault((-scale, -decay), {"params": [], "weight_decay": decay, "lr": lr * scale})
        group["params"].append(p)
    groups = [groups[key] for key in sorted(groups)]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum,
                           nesterov=config.optimizer == "nesterov" and config.momentum > 0)


def parameter_lr_scales(model: nn.Module, layer_decay: float = 1.0, backbone_scale: float = 1.0) -> dict:
    """{id(parameter): learning-rate multiplier}: the classifier's layer gets 1, the layer d steps
    below it layer_decay ** d (BEiT's layer-wise decay, which USB's ViT recipes use; parameters
    of the model itself, such as a ViT's position embedding, count as its input layer), and every
    layer but the classifier is further scaled by ``backbone_scale``."""
    groups = layer_groups(model)
    head = {id(p) for p in classifier_layer(model).parameters()}
    scales = {}
    for depth, group in enumerate(reversed(groups)):
        for p in group.parameters():
            scales.setdefault(id(p), layer_decay ** depth)
    for p in model.parameters():
        # Parameters outside every group belong to the model itself: a ViT's class token and
        # position embedding, which enter at the input, as the first group does (BEiT's layer 0).
        scales.setdefault(id(p), layer_decay ** (len(groups) - 1))
        if id(p) not in head:
            scales[id(p)] *= backbone_scale
    return scales


def exempt_from_weight_decay(models) -> frozenset:
    """ids of the parameters the models name in ``no_weight_decay()`` (timm's convention: a ViT's
    position embedding and class token), looked up in each model and in any submodule."""
    ids = set()
    for model in models:
        for module in model.modules():
            names = module.no_weight_decay() if hasattr(module, "no_weight_decay") else ()
            params = dict(module.named_parameters())
            ids.update(id(params[n]) for n in names if n in params)
    return frozenset(ids)
