"""Name -> factory registries for methods, models and datasets.

An unknown name raises a ConfigError that lists the valid choices, so a typo on the
command line tells the user what they could have typed.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, List, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


METHODS: Registry = Registry("method")
MODELS: Registry = Registry("model")
DATASETS: Registry = Registry("dataset")
