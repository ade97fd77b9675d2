"""A model's accuracy and mean cross-entropy on labeled examples, in eval mode, summed over the
ranks of a multi-process run."""
from __future__ import annotations

import contextlib
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F

from ..data.pools import MemoryPool
from . import distributed


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
             transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
             autocast: Optional[Callable] = None, ctx: Optional[distributed.Context] = None) -> Dict[str, float]:
    """Accuracy and mean cross-entropy of model on (x, y), in eval mode. transform turns stored
    examples into model inputs (e.g. uint8 images into standardised floats). With several
    processes (``ctx``), each evaluates its contiguous share and the sums are added up."""
    rank, world = (ctx.rank, ctx.world) if ctx is not None and ctx.active else (0, 1)
    batches = MemoryPool(x, y=y).batches(batch_size, rank, world)
    return evaluate_batches(model, batches, len(x), y.device, transform, autocast, ctx)


@torch.no_grad()
def evaluate_batches(model: torch.nn.Module, batches, total: int, device: torch.device,
                     transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                     autocast: Optional[Callable] = None, ctx: Optional[distributed.Context] = None) -> Dict[str, float]:
    """``evaluate`` on (stored, labels) batches of this process's share (a streamed test split)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=device)
    loss = torch.zeros((), device=device)
    for inputs, target in batches:
        inputs = transform(inputs) if transform is not None else inputs
        with autocast() if autocast is not None else contextlib.nullcontext():
            logits = model(inputs)
        logits = logits.float()
        correct += (logits.argmax(-1) == target).sum()
        loss += F.cross_entropy(logits, target, reduction="sum")
    model.train(was_training)
    if ctx is not None and ctx.active:
        sums = ctx.sum(torch.stack([correct.float(), loss.float()]))
        correct, loss = sums[0], sums[1]
    return {"accuracy": float(correct) / total, "loss": float(loss) / total}
