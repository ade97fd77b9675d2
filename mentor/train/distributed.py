"""Several processes, one run: `torchrun --nproc_per_node N -m mentor.cli train ...`.

Every registered method runs unchanged, because what is synchronised lives in the trainer and
not in the methods:
- Parameters start equal (every rank seeds the same way, then rank 0's weights are broadcast)
  and stay equal: before every optimizer step (a pre-step hook on each optimizer of the
  method: both of MPL's, both of DivideMix's, ...) the gradients of that optimizer's
  parameters are averaged over the ranks. A method that sets ``p.grad`` itself (MPL's student
  step) is averaged the same way, so MPL's teacher receives the mean of the ranks' feedback.
- Batches: every rank draws the run's global batch (N x --batch-size labeled, N x
  --unlabeled-batch-size unlabeled) from the same seeded index stream and takes its own
  contiguous slice, so the ranks see disjoint examples and N ranks at batch b follow the
  1-process run at batch N x b. Augmentation draws per rank (its own view generator).
- Buffers (batch-norm running statistics, which each rank updates on its own slice) are
  broadcast from rank 0 after every step, as DistributedDataParallel's broadcast_buffers does,
  so evaluation, a teacher's predictions and the EMA see one model. ``--sync-bn`` instead
  normalises each training batch with statistics over all ranks (SyncBatchNorm; CUDA only).
- Mean Teacher's EMA teacher and the trainer's EMA are updated from equal weights on every
  rank, so they stay equal without communication.
- Rank 0 alone writes config, split, metrics, checkpoints and the summary; training logs
  are averaged over the ranks; evaluation is sharded over the ranks and summed.
- A checkpoint keeps every rank's random state (view generator, torch RNG), so a killed run
  resumes on the same trajectory with the same N (a different N is refused).
Statistics a method keeps (FreeMatch's thresholds, FlexMatch's class counts, SimMatch's memory
bank) are computed over the global batch through ``method.collective`` (this Context: ``mean``
and ``all_gather``), so they too stay equal on every rank and equal the 1-process run's.
Methods that draw batches of their own (DivideMix's clean and noisy streams, Noisy Student's
selection, ReMixMatch's extra strong views) draw the same examples on every rank.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- collectives (no-ops on one process) ---------------------------------------------
    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not self.active or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per optimizer step
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        if self.active:
            optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.average_gradients(opt))

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Rank 0's values into every rank's tensors, one collective per dtype."""
        if not self.active:
            return
        by_dtype = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.broadcast(flat, 0)
            offset = 0
            for t in group:
                with torch.no_grad():
                    t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(values)
        return values

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over the ranks (a new tensor; the input is left as it is)."""
        if not self.active:
            return values
        total = values.detach().clone()
        dist.all_reduce(total)
        return total / self.world

    def all_gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's ``values`` concatenated along the first dimension, in rank order (the
        global batch, as the stream laid it out). Carries no gradient."""
        if not self.active:
            return values
        parts = [torch.empty_like(values) for _ in range(self.world)]
        dist.all_gather(parts, values.detach().contiguous())
        return torch.cat(parts)

    def gather(self, obj) -> List:
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


_CONTEXT = Context()


def context() -> Context:
    """This process's place in the run: from torchrun's environment (RANK, WORLD_SIZE,
    LOCAL_RANK), the process group created at the first call; one process otherwise."""
    global _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("MENTOR_BACKEND", "") != "gloo" else "gloo"
        dist.init_process_group(backend)
        _CONTEXT = Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return _CONTEXT


def run(job):
    """``job()`` as this process's part of the run, then leave the process group (after a
    barrier when every rank got through; at once when this one failed). Returns (its result,
    whether this is the process that reports)."""
    try:
        result = job()
    except BaseException:
        shutdown(clean=False)
        raise
    is_main = context().is_main
    shutdown()
    return result, is_main


def shutdown(clean: bool = True) -> None:
    """Leave the process group; ``clean``: after a barrier, so that no rank tears its sockets
    down while another still talks (gloo aborts the process then)."""
    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
