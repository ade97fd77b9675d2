"""``--model timm:NAME``: any timm model, as an optional extra (``pip install "mentor[timm]"``).

timm imports torchvision, which must be built for the installed torch: a torchvision wheel of
another build fails at import (``operator torchvision::nms does not exist``). mentor's core
never needs either; where timm cannot be imported, ``--model timm:...`` stops with that reason
and the fix.

``pretrained=hub`` takes timm's own ImageNet weights (downloaded once into the Hugging Face
cache; offline, the error names the file to fetch elsewhere), ``pretrained=PATH`` a local file.
Model options other than mentor's (``pretrained``, ``resolution``, ``dropout``,
``stochastic_depth``) go to ``timm.create_model`` (e.g. ``img_size=96`` for a ViT).
timm's stochastic-depth layers are swapped for mentor's DropPath (same drop rule), so Meta
Pseudo Labels can replay their noise.
"""
from __future__ import annotations

from typing import Optional, Tuple

from torch import nn

from ..errors import ConfigError
from .layers import DropPath

PREFIX = "timm:"


def import_timm():
    try:
        import timm
    except Exception as exc:  # ImportError, or torchvision's RuntimeError for a mismatched build
        import torch
        raise ConfigError(
            f"--model timm:... needs the timm package, which could not be imported ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). timm imports torchvision, and torchvision must be "
            f"built for the installed torch {torch.__version__}: install the pair from PyTorch's own index, e.g. "
            f"pip install torch=={torch.__version__.split('+')[0]} torchvision timm --index-url "
            "https://download.pytorch.org/whl/cpu (or /whl/cu128 for CUDA), then pip install \"mentor[timm]\". "
            "Without timm, --model efficientnet_lite0 --model-hp pretrained=packaged is a pretrained backbone "
            "that needs torch only") from None
    return timm


def _swap_drop_path(model: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child).__name__ == "DropPath" and not isinstance(child, DropPath):
                setattr(parent, name, DropPath(float(getattr(child, "drop_prob", 0.0))))


def pretrained_config(name: str) -> dict:
    """timm's pretrained configuration of NAME (mean, std, input_size, where its weights live),
    read from timm's registry without building the model."""
    timm = import_timm()
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}; list them with timm.list_models()")
    cfg = timm.models.get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None else {}


def create_timm_model(name: str, num_classes: int, pretrained: Optional[str], dropout: Optional[float] = None,
                      stochastic_depth: Optional[float] = None, **options) -> nn.Module:
    timm = import_timm()
    kwargs = dict(options)
    if dropout is not None:
        kwargs["drop_rate"] = float(dropout)
    if stochastic_depth is not None:
        kwargs["drop_path_rate"] = float(stochastic_depth)
    hub = pretrained == "hub"
    try:
        model = timm.create_model(name, pretrained=hub, num_classes=num_classes, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"timm has no model {name!r}; list them with timm.list_models()") from None
        raise
    except Exception as exc:  # no network, or a hub that cannot be reached
        if not hub:
            raise
        cfg = pretrained_config(name)
        where = cfg.get("hf_hub_id") or cfg.get("url") or "timm's hub"
        raise ConfigError(f"could not download the pretrained weights of timm:{name} ({type(exc).__name__}); "
                          f"fetch them from {where} on a machine that reaches it and pass pretrained=PATH "
                          "(torch.save(model.state_dict()) or the hub's .safetensors/.bin converted with torch.save)"
                          ) from None
    _swap_drop_path(model)
    return model


def timm_normalization(name: str) -> Tuple[Tuple[float, ...], Tuple[float, ...], Optional[int]]:
    """(mean, std, native resolution) from timm's pretrained configuration of NAME."""
    cfg = pretrained_config(name)
    size = cfg.get("input_size")
    return (tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225))),
            int(size[-1]) if size else None)
