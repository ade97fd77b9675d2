"""Building the run's models by name: mentor's registered architectures and ``timm:NAME``,
with pretrained weights and the input adaptation they need (mentor.models.pretrained)."""
from __future__ import annotations

import inspect
from typing import Optional, Sequence, Tuple

from torch import nn

from ..errors import ConfigError
from ..options import check_option_types
from ..registry import MODELS
from .pretrained import InputAdapter, adapted_input_shape, load_pretrained
from .timm_models import PREFIX as TIMM, create_timm_model, timm_normalization

# Options that mentor reads itself; the rest go to the architecture.
ADAPTER_OPTIONS = ("pretrained", "resolution")


def _native(name: str) -> Tuple[Optional[tuple], Optional[tuple], Optional[int]]:
    """(mean, std, native resolution) that NAME's pretrained weights expect, where it declares them."""
    if name.startswith(TIMM):
        return timm_normalization(name[len(TIMM):])
    model = MODELS.get(name)
    return (getattr(model, "input_mean", None), getattr(model, "input_std", None),
            getattr(model, "native_resolution", None))


def input_normalization(name: str, options: dict) -> Optional[Tuple[tuple, tuple]]:
    """(mean, std) in [0, 1] units to standardise images with: the pretrained weights' own
    (ImageNet's), or None to use the data's channel statistics (a model trained from scratch,
    or a mentor architecture that declares none)."""
    if not options.get("pretrained"):
        return None
    mean, std, _ = _native(name)
    return (tuple(mean), tuple(std)) if mean is not None else None


def create_model(name: str, input_shape: Sequence[int], num_classes: int, load_weights: bool = True,
                 **options) -> nn.Module:
    """The model NAME for inputs of ``input_shape``. ``pretrained`` loads weights (unless
    ``load_weights`` is False: a run being restored brings its own), ``resolution`` resizes inputs."""
    options = dict(options)
    pretrained = options.pop("pretrained", None)
    if pretrained is False:  # pretrained=false, as a user types "no weights"
        pretrained = None
    resolution = options.pop("resolution", None)
    is_image = len(input_shape) == 3
    if (pretrained or resolution) and not is_image and name.startswith(TIMM):
        raise ConfigError(f"model {name!r} takes images; the data have input shape {tuple(input_shape)}")
    if pretrained is not None and not isinstance(pretrained, str):
        raise ConfigError(f"pretrained must be a path, 'packaged' or 'hub', got {pretrained!r}")
    if resolution is not None and (not is_image or int(resolution) < 1):
        raise ConfigError(f"resolution={resolution!r} resizes images to that side; the data have input shape "
                          f"{tuple(input_shape)}")
    if is_image and (pretrained or resolution or name.startswith(TIMM)):
        mean, _, native = _native(name)
        size = int(resolution) if resolution else (native if pretrained else None)
        channels = 3 if (mean is not None and len(mean) == 3) or name.startswith(TIMM) else input_shape[0]
        inner = adapted_input_shape(input_shape, channels, size)
    else:
        size, channels, inner = None, None, tuple(input_shape)
    if not name.startswith(TIMM):
        build = MODELS.get(name)
        defaults = {k: p.default for k, p in inspect.signature(build).parameters.items() if p.default is not p.empty}
        options = check_option_types(f"model {name!r}: --model-hp", options, defaults)
    try:
        if name.startswith(TIMM):
            net = create_timm_model(name[len(TIMM):], num_classes, pretrained if load_weights else None, **options)
        else:
            net = build(inner, num_classes, **options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
    if pretrained and pretrained != "hub" and load_weights:
        load_pretrained(net, name, pretrained)
    elif pretrained == "hub" and not name.startswith(TIMM):
        raise ConfigError(f"pretrained=hub is timm's download; model {name!r} takes pretrained=PATH"
                          + (" or pretrained=packaged" if name == "efficientnet_lite0" else ""))
    if channels is not None and ((size and (size, size) != tuple(input_shape[1:])) or channels != input_shape[0]):
        net = InputAdapter(net, size, channels)
    return net


class ModelFactory:
    """Builds the run's model, ``factory(**overrides)``; methods read ``input_shape`` from it
    (e.g. ReMixMatch's rotation loss applies to square images only). An override ``model=NAME``
    builds another architecture with the overrides as its options (a Noisy Student or
    distillation teacher or student of its own kind). ``load_weights=False``: pretrained weights
    are not read (a run restored from its checkpoint)."""

    def __init__(self, name: str, input_shape: Sequence[int], num_classes: int, load_weights: bool = True,
                 **options):
        if "model" in options:  # options that name their own architecture (a Noisy Student round's student)
            options = dict(options)
            name = options.pop("model")
        self.name, self.input_shape, self.num_classes, self.options = name, tuple(input_shape), num_classes, options
        self.load_weights = load_weights

    def __call__(self, **overrides) -> nn.Module:
        if "model" in overrides:
            overrides = dict(overrides)
            name = overrides.pop("model")
            return create_model(name, self.input_shape, self.num_classes, self.load_weights, **overrides)
        return create_model(self.name, self.input_shape, self.num_classes, self.load_weights,
                            **{**self.options, **overrides})

    def normalization(self) -> Optional[Tuple[tuple, tuple]]:
        return input_normalization(self.name, self.options)
