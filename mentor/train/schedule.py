"""Learning-rate schedules as multipliers of the base rate."""
from __future__ import annotations

import math


def lr_multiplier(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Linear warmup over warmup_steps, then constant or cosine decay to 0 at total_steps."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
