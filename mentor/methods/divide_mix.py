"""DivideMix: learning with noisy labels as semi-supervised learning. Two networks each split the
labeled set into clean and noisy for the other, then train by MixMatch on the split.

Source: Li et al. 2020, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning"
(survey seed 004, section "DivideMix"; REFERENCES.md "Other methods"), Algorithm 1 and its
public code. Use with --label-noise (the benchmark's noisy labels) or on labels you distrust.
1. Warm-up (``warmup_steps``): both networks learn the (noisy) labeled batch with cross-entropy.
2. Co-divide, every ``divide_every`` steps (one pass over the labeled set by default): each
   network's per-example cross-entropy on every labeled example (eval mode, clean inputs), scaled
   to [0, 1], is modelled by a two-component Gaussian mixture (scikit-learn's GaussianMixture,
   max_iter 10, tol 1e-2, reg_covar 5e-4 as the code); w_i = the posterior of the component with
   the smaller mean. Examples with w_i > ``threshold`` (0.5) are clean (labeled) for the *other*
   network, the rest noisy (their labels dropped, unlabeled).
3. Each network then trains on the other's split: a labeled batch from the clean set, an
   unlabeled batch from the noisy set and from the run's unlabeled pool (its examples that are
   not in the labeled set; DivideMix proper has none). Two augmentations of each.
   - Label co-refinement: y' = Sharpen(w_i y_i + (1 - w_i) mean of its own two predictions, T).
   - Label co-guessing: q = Sharpen(mean of both networks' predictions on both views, T).
   - MixMatch: mixup of all four views with a shuffled copy of their union, lam' = max(lam,
     1 - lam), lam ~ Beta(alpha, alpha) (alpha = 4); loss = CE on the mixed labeled part +
     lambda_u(t) x mean squared error on the mixed unlabeled part (lambda_u = 25, the code's
     value for 50% noise on CIFAR-10, ramped in linearly after warm-up) + the uniform-prior
     penalty sum_c pi_c log(pi_c / mean prediction_c) (pi_c = 1 / C).
The evaluated model is the two networks' mean prediction, as in the paper's test.
Not included: the code's negative-entropy penalty during warm-up under asymmetric noise.

Defaults: the paper's, but ``mixup_alpha=0.1`` and ``unlabeled_weight=5`` in place of CIFAR-10's
4 and 25, chosen on a clean validation split under 40% symmetric noise (bench/divide_mix.py,
BENCHMARKS.md): the co-divide was as good with either (95% of the examples called clean are
clean), but alpha = 4 mixes every pair about half and half, which left the mlp on
Fashion-MNIST 2.6 points under standard training; alpha = 0.1 with lambda_u = 5 put it 2.0
above it. ``--hp mixup_alpha=4 unlabeled_weight=25`` gives the paper's CIFAR-10 values.
On clean labels it is the wrong tool: the mixture still calls about a third of them noisy,
and on Fashion-MNIST-1000 it ends 3.2 points under supervised training (any threshold).
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import nn

from ..data.pools import IndexStream
from ..errors import ConfigError
from ..losses import linear_ramp, sharpen, soft_cross_entropy
from ..models.predict import predict
from ..options import POSITIVE, STEPS, WEIGHT, Range
from ..registry import METHODS
from .base import Method, resolve_steps, upcast
from .mixmatch import check_mixmatch_options, mix_batches

NETS = ("net1", "net2")


class MeanPrediction(nn.Module):
    """The networks' mean softmax, returned as log-probabilities (usable as logits)."""

    def __init__(self, *nets: nn.Module):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(upcast(net(x)), dim=-1) for net in self.nets]).mean(0)
        return probs.clamp_min(1e-12).log()


def clean_probability(losses: np.ndarray, seed: int) -> np.ndarray:
    """DivideMix's co-divide: P(clean | loss) from a two-component Gaussian mixture on the
    per-example losses scaled to [0, 1]; the clean component is the one with the smaller mean."""
    span = losses.max() - losses.min() if len(losses) else 0.0
    if len(losses) < 2 or span < 1e-12:
        return np.ones(len(losses))  # nothing to tell apart
    scaled = ((losses - losses.min()) / span).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(scaled)
    return gmm.predict_proba(scaled)[:, int(np.argmin(gmm.means_.reshape(-1)))]


def refine_labels(y_onehot: torch.Tensor, w: torch.Tensor, own: torch.Tensor, temperature: float) -> torch.Tensor:
    """Label co-refinement: Sharpen(w y + (1 - w) p), w the other network's P(clean) per example."""
    return sharpen(w[:, None] * y_onehot + (1 - w[:, None]) * own, temperature)


def prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """sum_c pi_c log(pi_c / mean_x p_c(x)) with the uniform prior pi_c = 1 / C."""
    mean = F.softmax(logits, dim=-1).mean(0)
    prior = torch.full_like(mean, 1.0 / len(mean))
    return (prior * (prior / mean.clamp_min(1e-12)).log()).sum()


@METHODS.register("divide_mix")
class DivideMix(Method):
    name = "divide_mix"
    option_ranges = {"warmup_steps": STEPS, "divide_every": STEPS, "threshold": Range(0, 1, high_open=True),
                     "temperature": POSITIVE, "mixup_alpha": POSITIVE, "unlabeled_weight": WEIGHT, "ramp_steps": STEPS,
                     "prior_weight": WEIGHT}
    needs_pool_in_memory = "draws its mixing partners from the whole pool"
    strong_view = "unused"
    smoke_hparams = {"warmup_steps": 2, "divide_every": 2}
    view_seed_offset = 31

    def __init__(self, model_factory, num_classes, seed=0, warmup_steps: float = 0.1, divide_every=None,
                 threshold: float = 0.5, temperature: float = 0.5, mixup_alpha: float = 0.1,
                 unlabeled_weight: float = 5.0, ramp_steps: float = 0.1, prior_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed)
        check_mixmatch_options(temperature, mixup_alpha, unlabeled_weight)
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold must be in [0, 1), got {threshold}")
        self.warmup_steps, self.divide_every, self.threshold = warmup_steps, divide_every, threshold
        self.temperature, self.mixup_alpha = temperature, mixup_alpha
        self.unlabeled_weight, self.ramp_steps, self.prior_weight = unlabeled_weight, ramp_steps, prior_weight
        for name in NETS:
            self.models[name] = model_factory()
        self.ensemble = MeanPrediction(*(self.models[name] for name in NETS))
        self.division: Optional[Dict[str, torch.Tensor]] = None  # net -> P(clean) by the *other* net
        self.divided_at = -1
        # Derived from the division (set with it): per net, (clean, noisy) positions in the
        # labeled set; the pool positions of examples that are not labeled; the batch streams.
        self.splits: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        self.pool_only: Optional[torch.Tensor] = None
        self.streams: Dict[str, IndexStream] = {}
        self.index_generator = torch.Generator().manual_seed(seed + 29)

    def configure_optimizers(self, make_optimizer):
        for name in NETS:
            self.optimizers[name] = make_optimizer(self.models[name].parameters())

    def setup(self, total_steps):
        super().setup(total_steps)
        self.warmup_steps = resolve_steps("warmup_steps", self.warmup_steps, total_steps)
        self.ramp_steps = resolve_steps("ramp_steps", self.ramp_steps, total_steps)
        if self.divide_every is not None:
            self.divide_every = resolve_steps("divide_every", self.divide_every, total_steps)
        self.hparams.update(warmup_steps=self.warmup_steps, ramp_steps=self.ramp_steps, divide_every=self.divide_every)

    def eval_model(self):
        return self.ensemble

    def eval_models(self):
        return dict(self.models)

    # --- the unlabeled candidates: noisy labeled examples, then the pool's unlabeled-only ones ---
    def _pool_only_positions(self) -> torch.Tensor:
        pool, labeled = self.unlabeled_pool, self.labeled_pool
        if pool.indices is None or labeled.indices is None:
            return torch.arange(len(pool.x), device=pool.x.device)
        in_labeled = np.isin(np.asarray(pool.indices), np.asarray(labeled.indices))
        return torch.as_tensor(np.flatnonzero(~in_labeled), device=pool.x.device)

    def _unlabeled_stored(self, candidates: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        """Stored examples for candidate positions: < len(noisy) -> a noisy labeled example, else the pool."""
        from_labeled = candidates < len(noisy)
        parts = [self.labeled_pool.x[noisy[candidates[from_labeled]]]]
        parts.append(self.unlabeled_pool.x[self.pool_only[candidates[~from_labeled] - len(noisy)]])
        return torch.cat(parts)

    def co_divide(self) -> dict:
        labeled = self.labeled_pool
        if labeled is None or self.unlabeled_pool is None:
            raise ConfigError("divide_mix splits the whole labeled set; set method.labeled_pool and "
                              "method.unlabeled_pool (the Trainer does)")
        probability = {}
        for name in NETS:
            probs = predict(self.models[name], labeled.transform, labeled.x, labeled.x.device, 1024, self.autocast)
            losses = -probs.gather(1, labeled.y[:, None]).squeeze(1).clamp_min(1e-12).log()
            probability[name] = torch.as_tensor(
                clean_probability(losses.cpu().double().numpy(), self.seed + self.step_index), dtype=torch.float32,
                device=labeled.x.device)
        self._set_division({"net1": probability["net2"], "net2": probability["net1"]})  # each learns the other's split
        self.divided_at = self.step_index
        return {f"clean_fraction_{k}": float((v > self.threshold).float().mean()) for k, v in self.division.items()}

    def _clean_and_noisy(self, name: str):
        w = self.division[name]
        clean = torch.nonzero(w > self.threshold).squeeze(1)
        if len(clean) == 0:  # keep the more probably clean half rather than no labeled data at all
            clean = w.argsort(descending=True)[:max(1, len(w) // 2)]
        noisy = torch.ones(len(w), dtype=torch.bool, device=w.device)
        noisy[clean] = False
        return clean, torch.nonzero(noisy).squeeze(1)

    def _set_division(self, division: Dict[str, torch.Tensor]) -> None:
        """Takes each net's P(clean) and derives its clean and noisy sets and its batch streams."""
        self.division = division
        self.pool_only = self._pool_only_positions()
        for name in NETS:
            self.splits[name] = clean, noisy = self._clean_and_noisy(name)
            self.streams[name + "_clean"] = IndexStream(len(clean), 1, self.index_generator)
            self.streams[name + "_unlabeled"] = IndexStream(max(1, len(noisy) + len(self.pool_only)), 1,
                                                            self.index_generator)

    # --- steps ----------------------------------------------------------------------------
    def step(self, batch):
        self.train()
        if self.step_index < self.warmup_steps:
            losses = {f"loss_{name}": self.supervised_update(self.models[name], self.optimizers[name], batch)
                      for name in NETS}
            self.step_index += 1
            return {"loss": sum(losses.values()) / len(NETS), **losses}
        if self.divide_every is None:
            self.divide_every = self.hparams["divide_every"] = max(1, -(-len(self.labeled_pool.x) // len(batch.x_l)))
        logs = {}
        if self.division is None or self.step_index - self.divided_at >= self.divide_every:
            logs.update(self.co_divide())
        for name, other in zip(NETS, reversed(NETS)):
            logs.update({f"{k}_{name}": v for k, v in self._train_net(name, other, len(batch.x_l), len(batch.x_u)).items()})
        self.step_index += 1
        logs["loss"] = (logs["loss_net1"] + logs["loss_net2"]) / 2
        logs["loss_u"] = (logs["loss_u_net1"] + logs["loss_u_net2"]) / 2
        return logs

    def _train_net(self, name: str, other: str, batch_l: int, batch_u: int) -> dict:
        labeled, pool = self.labeled_pool, self.unlabeled_pool
        net, other_net, g = self.models[name], self.models[other], self.device_generator(labeled.x.device)
        clean, noisy = self.splits[name]
        stream = self.streams[name + "_clean"]
        stream.batch_size = min(batch_l, len(clean))
        chosen = clean[stream.next().to(clean.device)]
        x_l, y_l, w = labeled.x[chosen], labeled.y[chosen], self.division[name][chosen]
        has_unlabeled = len(noisy) + len(self.pool_only) > 0
        with torch.no_grad(), self.autocast():
            views_l = [labeled.augment(x_l, g), labeled.augment(x_l, g)]
            own = torch.stack([F.softmax(upcast(net(v)), dim=-1) for v in views_l]).mean(0)
            refined = refine_labels(F.one_hot(y_l, self.num_classes).float(), w, own, self.temperature)
            inputs, targets = views_l, [refined, refined]
            if has_unlabeled:
                stream = self.streams[name + "_unlabeled"]
                stream.batch_size = min(batch_u, stream.n)
                stored = self._unlabeled_stored(stream.next().to(noisy.device), noisy)
                views_u = [pool.weak(stored, g), pool.weak(stored, g)]
                other_net.eval()
                guesses = [F.softmax(upcast(m(v)), dim=-1) for m in (net, other_net) for v in views_u]
                other_net.train()
                q = sharpen(torch.stack(guesses).mean(0), self.temperature)
                inputs, targets = inputs + views_u, targets + [q, q]
        mixed_x, mixed_t = mix_batches(inputs, targets, self.mixup_alpha, self.generator)
        with self.autocast():
            logits = upcast(net(torch.cat(mixed_x)))
        n_l = 2 * len(x_l)
        loss_l = soft_cross_entropy(logits[:n_l], torch.cat(mixed_t[:2]))
        loss_u = logits.new_zeros(())
        if has_unlabeled:
            loss_u = ((F.softmax(logits[n_l:], dim=-1) - torch.cat(mixed_t[2:])) ** 2).mean()
        weight = self.unlabeled_weight * linear_ramp(self.step_index - self.warmup_steps, self.ramp_steps)
        loss = loss_l + weight * loss_u + self.prior_weight * prior_penalty(logits)
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "loss_l": loss_l.detach(), "loss_u": loss_u.detach()}

    # --- state ----------------------------------------------------------------------------
    def extra_state(self):
        if self.division is None:
            return {}
        return {"division": {k: v.cpu() for k, v in self.division.items()}, "divided_at": self.divided_at,
                "streams": {k: s.state_dict() for k, s in self.streams.items()},
                "index_generator": self.index_generator.get_state()}

    def load_extra_state(self, state):
        if not state:
            return
        device = next(self.models["net1"].parameters()).device
        self._set_division({k: v.to(device) for k, v in state["division"].items()})
        self.divided_at = int(state["divided_at"])
        for k, s in self.streams.items():
            s.load_state_dict(state["streams"][k])
        self.index_generator.set_state(state["index_generator"])
