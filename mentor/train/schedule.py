"""Learning-rate schedules as multipliers of the base rate."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "cosine_7pi16")


def lr_multiplier(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Linear warmup over warmup_steps, then one of:
    - constant;
    - cosine: 0.5 (1 + cos(pi p)), decaying to 0 at the end (p = progress after warmup);
    - cosine_7pi16: cos(7 pi p / 16), FixMatch's schedule, which ends at cos(7pi/16) = 0.195.
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine_7pi16":
        return math.cos(7.0 * math.pi * progress / 16.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
