"""Labeled and unlabeled batch streams: seeded, shuffled epochs, resumable from a state dict.
(IndexStream, the seeded permutations, lives with the pools that draw from it.)"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .pools import IndexStream, MemoryPool, rank_slice, to_device


@dataclass
class Batch:
    """One training step's data. x_u_strong is present when the stream makes an augmented view."""

    x_l: torch.Tensor
    y_l: torch.Tensor
    x_u: torch.Tensor
    x_u_strong: Optional[torch.Tensor] = None
    idx_u: Optional[torch.Tensor] = None  # positions in the unlabeled pool, for per-sample state
    # A second, independent draw of the labeled and weak views, for methods that compare two
    # stochastic passes (Pi-model, Mean Teacher, ...): "each side with its own noise".
    x_l_alt: Optional[torch.Tensor] = None
    x_u_alt: Optional[torch.Tensor] = None
    # Per-example targets that come with the unlabeled examples from their pool (Noisy
    # Student's streamed selection carries the teacher's soft labels).
    y_u: Optional[torch.Tensor] = None
    x_u_stored: Optional[torch.Tensor] = None  # the unlabeled examples as stored, before any view
    idx_l: Optional[torch.Tensor] = None  # positions in the labeled set (SimMatch's labeled memory bank)
    x_l_strong: Optional[torch.Tensor] = None  # a strong view of the labeled batch (DeFixMatch)
    x_u_medium: Optional[torch.Tensor] = None  # a medium view of the unlabeled batch (SequenceMatch)


class SemiSupervisedStream:
    """Draws (labeled batch, unlabeled weak view[, strong view]) for each step. The labeled
    examples are held on the training device; the unlabeled ones come from ``pool``
    (mentor.data.pools: a tensor held in memory, or shards streamed from disk, behind one
    interface). ``views`` (mentor.augment.FeatureViews or ImageViews) turns stored examples into
    model inputs on the device; the strong view is made only when ``make_strong`` is set."""

    def __init__(self, x_l: torch.Tensor, y_l: torch.Tensor, pool, batch_size: int, unlabeled_batch_size: int,
                 seed: int, views, make_strong: bool = True, make_second_view: bool = False, rank: int = 0,
                 world: int = 1, workers: int = 0, make_labeled_strong: bool = False, make_medium: bool = False):
        if isinstance(pool, torch.Tensor):
            pool = MemoryPool(pool)
        self.x_l, self.y_l, self.pool = x_l, y_l, pool
        # Several processes (mentor.train.distributed): every rank draws the global batch from the
        # same index stream and keeps its own contiguous slice; augmentation draws per rank.
        self.rank, self.world = rank, world
        self.views = views
        self.make_strong = make_strong and views.has_strong
        self.make_second_view = make_second_view
        self.make_labeled_strong = make_labeled_strong and views.has_strong
        self.make_medium = make_medium and views.has_strong
        # One generator for index order, one for augmentation: both seeded, both saved.
        self.index_generator = torch.Generator().manual_seed(seed)
        self.view_generator = torch.Generator(device=x_l.device).manual_seed(seed + 1 + 1000 * rank)
        self.labeled = IndexStream(len(x_l), batch_size * world, self.index_generator)
        self.unlabeled = pool.draws(unlabeled_batch_size, self.index_generator, seed, rank, world, x_l.device,
                                    workers=workers)

    @property
    def x_u(self):
        """The unlabeled pool's stored examples when they are held in memory, else None."""
        return getattr(self.pool, "x", None)

    def next(self) -> Batch:
        il = to_device(rank_slice(self.labeled.next(), self.rank, self.world), self.x_l.device)
        iu, x_u, y_u = self.unlabeled.next()
        g = self.view_generator
        x_l = self.x_l[il]
        batch = Batch(self.views.labeled(x_l, g), self.y_l[il], self.views.weak(x_u, g), None, iu, y_u=y_u,
                      x_u_stored=x_u, idx_l=il)
        if self.make_strong:
            batch.x_u_strong = self.views.strong(x_u, g)
        if self.make_second_view:
            batch.x_l_alt, batch.x_u_alt = self.views.labeled(x_l, g), self.views.weak(x_u, g)
        # Drawn after the views above, so that a method that asks for neither sees the same draws.
        if self.make_labeled_strong:
            batch.x_l_strong = self.views.strong(x_l, g)
        if self.make_medium:
            batch.x_u_medium = self.views.medium(x_u, g)
        return batch

    def state_dict(self) -> dict:
        return {
            "index_generator": self.index_generator.get_state(),
            "view_generator": self.view_generator.get_state(),
            "labeled": self.labeled.state_dict(),
            "unlabeled": self.unlabeled.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.index_generator.set_state(state["index_generator"])
        self.view_generator.set_state(state["view_generator"])
        self.labeled.load_state_dict(state["labeled"])
        self.unlabeled.load_state_dict(state["unlabeled"])

    def close(self) -> None:
        self.unlabeled.close()
