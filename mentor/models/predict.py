"""A model's predictions on stored examples, in eval mode and batch by batch: what the trainer's
evaluation, the methods that label data with a model (Noisy Student, distillation, DivideMix,
Label Propagation, Reduced MPL) and `mentor pseudo-label` share."""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch
import torch.nn.functional as F


@torch.no_grad()
def eval_batches(model: torch.nn.Module, transform: Callable, x, device: torch.device, batch_size: int,
                 forward: Callable = lambda model, inputs: model(inputs),
                 autocast: Optional[Callable] = None) -> torch.Tensor:
    """``forward(model, inputs)`` (default: the logits) in float32 on stored examples x, in eval
    mode (no dropout or stochastic depth, batch-norm running statistics), batch by batch, on
    ``device``; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            inputs = transform(torch.as_tensor(x[start:start + batch_size], device=device))
            with autocast() if autocast is not None else contextlib.nullcontext():
                out.append(forward(model, inputs))
    finally:
        model.train(was_training)
    return torch.cat(out).float() if out else torch.zeros(0)


def predict(model: torch.nn.Module, transform: Callable, x, device: torch.device,
            batch_size: int, autocast: Optional[Callable] = None) -> torch.Tensor:
    """The model's float32 softmax on stored examples x (``eval_batches``)."""
    logits = eval_batches(model, transform, x, device, batch_size, autocast=autocast)
    return F.softmax(logits, dim=-1) if len(logits) else logits
