"""Atomic checkpoint files that say what they are.

A checkpoint is written to a temporary file in the same folder and moved into place with
os.replace, so a run killed mid-write leaves the previous checkpoint intact. Loading uses
torch.load(weights_only=True): a checkpoint holds tensors and plain containers only.
"""
from __future__ import annotations

import os
import tempfile

import torch

from ..errors import CheckpointError

FORMAT = "mentor-checkpoint"
VERSION = 1


def save_checkpoint(state: dict, path: str) -> None:
    payload = {"format": FORMAT, "version": VERSION, **state}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str, map_location="cpu") -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path} is corrupt or not a mentor checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mentor checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, "
                              f"this mentor reads version {VERSION}")
    return payload
