"""Gaussian input noise: the strong view of feature vectors."""
from __future__ import annotations

import torch

from ..errors import ConfigError


class GaussianNoise:
    """x + N(0, std^2) per element: the input noise of Mean Teacher and the simplest strong view
    for feature vectors (tabular data, 2-D toy problems)."""

    def __init__(self, std: float):
        if std <= 0:
            raise ConfigError(f"noise std must be positive, got {std}")
        self.std = float(std)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.std * noise

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"
