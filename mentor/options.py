"""KEY=VALUE options as the command line writes them (--hp, --model-hp, --data-hp, --methods NAME:KEY=VALUE)."""
from __future__ import annotations

import math
from typing import List, Optional

from .errors import ConfigError


def parse_value(text: str):
    """'0.1' -> 0.1, 'true' -> True, 'none' -> None, '8,8' -> [8, 8], anything else -> str."""
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: Optional[List[str]], flag: str) -> dict:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = parse_value(value)
    return options


def resolve_device(name: str):
    """The torch device a user named: ``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``; a device this machine lacks, or a name torch does not know, is a ConfigError."""
    import torch

    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}"
                              f"{'' if torch.version.cuda else ', a CPU build'}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name!r}: mentor trains on cpu, cuda or mps")
    return device


def _kind(value) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a word"}.get(type(value), type(value).__name__)


def check_option_types(what: str, options: dict, defaults: dict) -> dict:
    """``options`` with each value checked against the type of its default (ints and floats are
    numbers: an int option may take a fraction, e.g. of the run's steps, which the option's owner
    checks; a list of numbers where the default is a sequence); a value of the wrong type is a
    ConfigError naming ``what``, the option, the value and what it takes. Options whose default is
    None, or unknown here, pass as they are."""
    checked = dict(options)
    for key, value in options.items():
        default = defaults.get(key)
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{what} {key}={value!r}: takes true or false")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{what} {key}={value!r}: takes {_kind(default)}, like its default {default!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{what} {key}={value!r}: takes a finite number")
            if isinstance(default, int) and isinstance(value, float) and value.is_integer():
                checked[key] = int(value)  # an int option may also take a fraction (of the run's steps)
            elif isinstance(default, float):
                checked[key] = float(value)
        elif isinstance(default, (list, tuple)):
            items = value if isinstance(value, (list, tuple)) else [value]
            if default and all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in default) and \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                raise ConfigError(f"{what} {key}={value!r}: takes numbers separated by commas, like its default "
                                  f"{','.join(map(str, default))}")
    return checked


class Range:
    """The declared range of a numeric option, checked before any work: ``low``/``high`` bounds
    (open or closed), whole numbers only (``integer``), or a phase length (``steps``): a step count
    >= 0 or a fraction of the run in (0, 1). None passes only where the option's default is None
    (the option is off)."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False, integer=False, steps=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.integer, self.steps = integer, steps

    def text(self) -> str:
        if self.steps:
            return "a step count >= 0 or a fraction of the run in (0, 1)"
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind

    def admits(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.steps:
            return value >= 0 and (value < 1 or float(value).is_integer())
        if self.integer and not float(value).is_integer():
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


class Choice:
    """The declared choices of a word-valued option (a mode)."""

    def __init__(self, *choices):
        self.choices = choices

    def text(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))

    def admits(self, value) -> bool:
        return value in self.choices


# The ranges most options share.
WEIGHT = Range(0)                               # a loss weight: 0 switches its term off
POSITIVE = Range(0, low_open=True)              # a temperature, a scale, a step size
UNIT = Range(0, 1)                              # a probability, a confidence threshold, a mixing share
MOMENTUM = Range(0, 1, high_open=True)          # an EMA's momentum or decay
DROPOUT = Range(0, 1, high_open=True)           # a dropout or stochastic-depth rate
COUNT = Range(1, integer=True)                  # a number of things (layers, views, iterations)
STEPS = Range(steps=True)                       # a phase or ramp length


def check_option_ranges(what: str, options: dict, ranges: dict, defaults: dict) -> None:
    """Each of ``options`` that has a declared range or choice must lie in it; a value outside is
    a ConfigError naming ``what``, the option, the value and what it takes."""
    for key, value in options.items():
        declared = ranges.get(key)
        if declared is None or (value is None and defaults.get(key) is None):
            continue
        if not declared.admits(value):
            raise ConfigError(f"{what} {key}={'none' if value is None else repr(value)}: takes {declared.text()}")
