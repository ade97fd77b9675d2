"""KEY=VALUE options as the command line writes them (--hp, --model-hp, --data-hp, --methods NAME:KEY=VALUE)."""
from __future__ import annotations

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
