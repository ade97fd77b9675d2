"""The evaluated model's exponential moving average, updated without reading the device.

torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn is the EMA used here (its
state dict is what checkpoints hold), but its update_parameters tests the ``n_averaged``
buffer on the host twice per call (``n_averaged == 0``, ``n_averaged > 0``): two device syncs
in every training step on a GPU. This subclass keeps a host copy of that count, read once,
and otherwise does exactly what AveragedModel does with use_buffers=True: the first update
copies parameters and buffers, later ones lerp floating tensors by (1 - decay) with one
foreach kernel per (device, dtype) group and blend the integer buffers as the parent does.
"""
from __future__ import annotations

import itertools
from typing import Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype


class SyncFreeEMA(AveragedModel):
    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self._updates: Optional[int] = None  # host copy of n_averaged, read at the first update

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._updates = None  # the count comes with the state: read it again at the next update
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        if self._updates is None:
            self._updates = int(self.n_averaged)
        averaged = [t.detach() for t in itertools.chain(self.module.parameters(), self.module.buffers())]
        current = [t.detach().to(a.device) for t, a in
                   zip(itertools.chain(model.parameters(), model.buffers()), averaged)]
        if self._updates == 0:
            torch._foreach_copy_(averaged, current)
        else:
            groups = _group_tensors_by_device_and_dtype([averaged, current])
            for (device, _), ([mine, theirs], _) in groups.items():
                self.multi_avg_fn(mine, theirs, self.n_averaged.to(device))
        self.n_averaged += 1
        self._updates += 1
