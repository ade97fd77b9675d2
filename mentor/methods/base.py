"""The Method base class: what a semi-supervised method is to the trainer.

A method owns its models and optimizers and knows its rule; the trainer owns the loop,
schedules, EMA, evaluation, checkpoints and logging and never names a method.

Single-model methods implement ``loss(batch) -> StepOutput``; the default ``step`` does
backward and the optimizer update. Methods with several models or optimizers (Meta Pseudo
Labels, the Pseudo-Label baseline) override ``step`` openly.

Contract used by the trainer and the conformance tests:
- ``uses_unlabeled`` says whether unlabeled data changes the update (False only for supervised);
- ``strong_view`` is "required" (FixMatch, UDA), "optional" (used when present) or "unused";
- ``second_view`` asks for a second independent draw of the labeled and weak views (x_l_alt, x_u_alt);
- ``draws_own_unlabeled``: the method draws its unlabeled batches from ``unlabeled_pool`` itself
  (Noisy Student's filtered, balanced selection), so the stream makes no strong view for them;
- ``num_unlabeled`` (the size of the unlabeled pool) is set by the trainer before ``setup``, and
  ``unlabeled_pool`` (an ``UnlabeledPool``) and ``labeled_pool`` (a ``LabeledPool``) before the
  first step, for methods that must see the whole pool at once (Reduced MPL precomputes a
  teacher's predictions on it; Noisy Student pseudo-labels it and draws its own filtered,
  balanced batches from it; DivideMix and Label Propagation look at every labeled example);
- ``needs_pool_in_memory`` says why a method cannot stream its unlabeled pool from shards (None:
  it can), and ``choose_pool(pool)`` may replace the pool the batches come from;
- ``open_run`` (set by the trainer) opens a finished run folder, ``open_run(path, device)``, for
  methods that learn from another run's model (distillation's ``teacher=RUN``), so that no
  method depends on the trainer's module, which sits above them;
- ``input_shape`` is the model's input shape when the model factory tells it (the trainer's does);
- ``eval_models()`` names models evaluated besides ``eval_model()`` (e.g. Mean Teacher's teacher);
- forward passes run inside ``self.autocast()`` (bf16 on CUDA when the trainer asks for it);
- a method that uses unlabeled data logs its unsupervised term as ``loss_u``;
- ``makes_pseudo_labels``: the method labels unlabeled examples with the model's predictions and
  takes the shared options of mentor.methods.alignment (``dist_align``, ``debias`` and their
  estimates' settings), applied through ``adjust_pseudo_labels``; their state is saved with the
  method's (``pseudo_label_defaults`` may change their defaults for one method);
- ``labeled_strong_view`` asks the stream for a strong view of the labeled batch (``x_l_strong``,
  DeFixMatch), ``medium_view`` for a medium view of the unlabeled batch (``x_u_medium``,
  SequenceMatch);
- ``collective`` (set by the trainer) has ``mean`` and ``all_gather`` over the ranks of a
  torchrun run (identities on one process), for statistics the paper computes over the whole
  batch (EMAs of confidence, class counts, memory banks);
- all randomness comes from the global torch RNG (seeded by the trainer), from
  ``self.generator`` or, for views a method draws itself from the pools, from
  ``self.device_generator(device)`` (both saved in the state dict).
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.streams import Batch
from ..errors import CheckpointError, ConfigError
from ..options import check_option_ranges, check_option_types
from ..models.layers import features_and_logits
from .alignment import OPTION_RANGES as PSEUDO_LABEL_RANGES, OPTIONS as PSEUDO_LABEL_OPTIONS, \
    PseudoLabelAdjustment, SingleProcess, rescale

ModelFactory = Callable[[], nn.Module]
OptimizerFactory = Callable[..., torch.optim.Optimizer]  # (params, lr=None) -> optimizer


@dataclass
class UnlabeledPool:
    """The whole unlabeled pool as the trainer holds it. ``x``: stored examples (N_u, ...) on the
    training device, in the order of ``Batch.idx_u``; ``transform``: stored -> clean model input
    (eval view); ``strong``: stored -> the noised view, ``strong(x, generator)``, or None when
    the run has no strong view; ``indices``: each example's index in the dataset's pool
    (training set, then extra unlabeled data), to match labels computed elsewhere."""

    x: torch.Tensor
    transform: Callable[[torch.Tensor], torch.Tensor]
    strong: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    indices: Optional[List[int]] = None
    weak: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None


@dataclass
class LabeledPool:
    """The whole labeled set as the trainer holds it, for methods that look at all of it at once
    (DivideMix's per-example losses, Label Propagation's graph): stored examples ``x`` and labels
    ``y`` on the training device; ``transform``: stored -> clean model input; ``augment``:
    stored -> the labeled (weakly augmented) view, ``augment(x, generator)``."""

    x: torch.Tensor
    y: torch.Tensor
    transform: Callable[[torch.Tensor], torch.Tensor]
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    indices: Optional[List[int]] = None  # each example's index in the training set


@dataclass
class RunContext:
    """What the trainer tells a method about the run it trains in (``Method.bind``): autocast's
    (device type, dtype) or None, the unlabeled pool's size and its examples, the labeled examples,
    how to open another run folder (a teacher's), and the ranks' collective operations."""

    amp: Optional[tuple]
    num_unlabeled: int
    unlabeled_pool: Optional[UnlabeledPool]
    labeled_pool: Optional[LabeledPool]
    open_run: Optional[Callable]
    collective: object


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: Dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    name: str = "method"
    uses_unlabeled: bool = True
    strong_view: str = "optional"
    second_view: bool = False
    draws_own_unlabeled: bool = False
    # Hyper-parameters that make the rule observable within a few steps of a tiny problem
    # (e.g. no confidence threshold); used by the conformance suite only.
    smoke_hparams: Dict[str, object] = {}
    # Offset of the seed of device_generator, so that methods draw their own views from
    # streams of their own (kept per method: it fixes the draws of their recorded benchmarks).
    view_seed_offset: int = 0
    # Whether --capture may compile this method's loss and optimizer steps into static graphs:
    # true only where a step has no host-side logic (no phase, ramp or schedule read from
    # step_index, no data-dependent Python branch), so one graph serves every step.
    capturable: bool = False
    # Why the method must hold the whole unlabeled pool in memory (per-example state, a graph,
    # predictions on every example), or None: it learns from drawn batches alone and so can
    # stream its pool from shards (mentor.data.pools). The trainer refuses the first kind a
    # streamed pool and says why.
    needs_pool_in_memory: Optional[str] = None
    makes_pseudo_labels: bool = False
    pseudo_label_defaults: Dict[str, object] = {}
    labeled_strong_view: bool = False
    medium_view: bool = False
    # Each option's declared range (mentor.options.Range) or choices (Choice), checked by create()
    # and check_hparams() before any work; a subclass's entries add to (or override) its parents'.
    option_ranges: Dict[str, object] = {}
    # Options with no range to declare, each checked where it is read (a run folder, an options dict).
    unranged_options: Tuple[str, ...] = ()

    def __init__(self, model_factory: ModelFactory, num_classes: int, seed: int = 0):
        self.num_classes = num_classes
        self.models = nn.ModuleDict()
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._device_generator: Optional[torch.Generator] = None
        self.step_index = 0
        self.total_steps = 0
        # The run's context (RunContext), set by the trainer through bind(); these defaults serve a
        # method used on its own (tests, a single step).
        self.amp = None  # (device_type, dtype) of autocast
        self.num_unlabeled = 0  # size of the unlabeled pool
        self.unlabeled_pool: Optional[UnlabeledPool] = None
        self.labeled_pool: Optional[LabeledPool] = None
        self.open_run: Optional[Callable] = None  # (run folder, device) -> its trainer
        # (C, H, W) or (D,) when the factory says (the trainer's ModelFactory does), else None.
        self.input_shape = getattr(model_factory, "input_shape", None)
        self.collective = SingleProcess()  # the ranks' collectives under torchrun
        self.pseudo_label_adjustment: Optional[PseudoLabelAdjustment] = None  # set by create()

    def bind(self, context: RunContext) -> None:
        """The run this method trains in (the trainer calls it once, before setup)."""
        self.amp, self.num_unlabeled = context.amp, context.num_unlabeled
        self.unlabeled_pool, self.labeled_pool = context.unlabeled_pool, context.labeled_pool
        self.open_run, self.collective = context.open_run, context.collective

    def choose_pool(self, pool):
        """The pool the run's unlabeled batches come from, given the dataset's: the same by
        default; Noisy Student streams its selection of it, with the teacher's labels."""
        return pool

    def draw_strong_view(self, batch: Batch) -> torch.Tensor:
        """Another strong view of the unlabeled batch, beyond the stream's one (ReMixMatch's
        anchoring, CoMatch's second view), drawn with the method's device generator."""
        pool = self.unlabeled_pool
        stored = batch.x_u_stored if batch.x_u_stored is not None else pool.x[batch.idx_u]
        return pool.strong(stored, self.device_generator(stored.device))

    def autocast(self):
        """Mixed precision for forward passes (losses are computed in float32 by the callers)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.amp[0], dtype=self.amp[1])

    def device_generator(self, device) -> torch.Generator:
        """A generator on the training device for the views a method draws itself from
        ``unlabeled_pool`` or ``labeled_pool``; seeded by the run, created at first use, saved
        with the method's state."""
        if self._device_generator is None:
            self._device_generator = torch.Generator(device=device).manual_seed(self.seed + self.view_seed_offset)
        return self._device_generator

    # --- hyper-parameters ---------------------------------------------------------------
    @classmethod
    def create(cls, model_factory: ModelFactory, num_classes: int, seed: int = 0, **hparams) -> "Method":
        """Build the method from checked hyper-parameters (check_hparams)."""
        valid, defaults = cls.hparam_names(), cls.hparam_defaults()
        hparams = cls.check_hparams(hparams)
        shared = {k: hparams.pop(k, defaults[k]) for k in PSEUDO_LABEL_OPTIONS if k in defaults}
        method = cls(model_factory, num_classes, seed=seed, **hparams)
        if cls.makes_pseudo_labels:
            method.pseudo_label_adjustment = PseudoLabelAdjustment(num_classes, **shared)
        method.hparams = {name: getattr(method, name) for name in valid if name not in shared}
        if method.pseudo_label_adjustment is not None:
            method.hparams.update(method.pseudo_label_adjustment.options)
        return method

    @classmethod
    def check_hparams(cls, hparams: dict, what: Optional[str] = None) -> dict:
        """``hparams`` checked without building anything: each name known, each value of its
        default's type and inside its declared range (a ConfigError naming the option otherwise);
        returns them as the method takes them (whole floats of int options as ints)."""
        valid = cls.hparam_names()
        unknown = sorted(set(hparams) - set(valid))
        if unknown:
            raise ConfigError(
                f"method {cls.name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )
        # The command line reads "none" as None; an option whose default is a string (a mode
        # such as feedback="none") means the string.
        defaults = cls.hparam_defaults()
        hparams = {k: "none" if v is None and isinstance(defaults[k], str) else v for k, v in hparams.items()}
        what = what or f"method {cls.name!r}: --hp"
        checked = check_option_types(what, hparams, defaults)
        check_option_ranges(what, hparams, cls.declared_ranges(), defaults)  # naming each value as given
        return checked

    @classmethod
    def declared_ranges(cls) -> Dict[str, object]:
        """Option -> its declared Range or Choice, along the class hierarchy (the nearest wins)."""
        ranges: Dict[str, object] = dict(PSEUDO_LABEL_RANGES) if cls.makes_pseudo_labels else {}
        for klass in reversed(cls.__mro__):
            ranges.update(vars(klass).get("option_ranges", {}))
        options = cls.hparam_defaults()
        return {k: v for k, v in ranges.items() if k in options}  # not a parent's options the class fixes

    @classmethod
    def hparam_defaults(cls) -> Dict[str, object]:
        """Hyper-parameter -> default, from the keyword arguments of ``__init__`` along the class
        hierarchy (a subclass passing ``**options`` on to its parent inherits the parent's)."""
        defaults: Dict[str, object] = {}
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters
            for name, p in parameters.items():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in (
                        "self", "model_factory", "num_classes", "seed"):
                    defaults.setdefault(name, p.default)
            if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
                break  # this __init__ fixes its parent's other options itself
        if cls.makes_pseudo_labels:
            defaults.update({**PSEUDO_LABEL_OPTIONS, **cls.pseudo_label_defaults})
        return defaults

    @classmethod
    def hparam_names(cls) -> List[str]:
        return list(cls.hparam_defaults())

    # --- pseudo-labels -------------------------------------------------------------------
    def adjust_pseudo_labels(self, probs: torch.Tensor, labeled_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The weak view's class probabilities after the shared distribution alignment and
        debiasing (mentor.methods.alignment); unchanged when both are off. ``labeled_logits``:
        the model's logits on the labeled batch, for ``dist_align=labeled_predictions``."""
        adjust = self.pseudo_label_adjustment
        if adjust is None or not adjust.active:
            return probs
        probs = probs.detach().float()
        return rescale(probs, self._pseudo_label_log_factor(probs, labeled_logits).exp())

    def adjust_pseudo_label_logits(self, logits: torch.Tensor, temperature: float = 1.0,
                                   labeled_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits whose softmax at ``temperature`` is q = softmax(logits / T) adjusted as
        ``adjust_pseudo_labels`` adjusts it, by adding T x the log factor (a constant per class,
        so a gradient through the logits stays a gradient of the adjusted distribution)."""
        adjust = self.pseudo_label_adjustment
        if adjust is None or not adjust.active:
            return logits
        factor = self._pseudo_label_log_factor(F.softmax(logits.detach().float() / temperature, dim=-1),
                                               labeled_logits)
        return logits + temperature * factor.to(logits.dtype)

    def _pseudo_label_log_factor(self, probs: torch.Tensor, labeled_logits: Optional[torch.Tensor]) -> torch.Tensor:
        labeled_probs = None if labeled_logits is None else F.softmax(labeled_logits.detach().float(), dim=-1)
        return self.pseudo_label_adjustment.log_factor(probs, self.collective, self.label_frequencies, labeled_probs)

    def label_frequencies(self) -> torch.Tensor:
        """The labeled set's class frequencies (ReMixMatch's alignment target)."""
        if self.labeled_pool is None:
            raise ConfigError(f"method {self.name!r} needs the labeled set's class frequencies; set "
                              "method.labeled_pool (the Trainer does)")
        counts = torch.bincount(self.labeled_pool.y, minlength=self.num_classes).float()
        return counts / counts.sum()

    # --- training -----------------------------------------------------------------------
    def configure_optimizers(self, make_optimizer: OptimizerFactory) -> None:
        """Default: one optimizer over the one model."""
        self.optimizers["model"] = make_optimizer(self.models["model"].parameters())

    def scheduled_optimizers(self) -> Dict[str, torch.optim.Optimizer]:
        """The optimizers whose learning rate follows the trainer's schedule (default: all)."""
        return dict(self.optimizers)

    def optimizer_phases(self) -> Dict[str, Tuple[int, int]]:
        """Optimizer -> (first step, end step) of the phase it trains in, for methods that train
        their models one after another (a teacher, then a student): the trainer then lays the
        schedule (warm-up, cosine decay) over each phase rather than over the run, so each model
        anneals at the end of its own phase. Read after setup(); default: none, every optimizer
        follows the run's schedule."""
        return {}

    def setup(self, total_steps: int) -> None:
        """Told once before training how many steps the run has (for phases and ramps)."""
        self.total_steps = total_steps

    def capture_blocker(self) -> Optional[str]:
        """Why --capture cannot compile this method's step as static graphs, as a clause
        ("decides ... on the host"); None when it can."""
        if not self.capturable:
            return "decides on the host inside its step (phases, ramps or data-dependent branches)"
        if self.pseudo_label_adjustment is not None and self.pseudo_label_adjustment.active:
            return "adjusts its pseudo-labels by running class-marginal estimates (dist_align / debias)"
        return None

    def compile_step(self, compile: Callable) -> None:
        """--capture: replace the parts of the step that run on the device by ``compile(part)``
        (the trainer compiles the optimizer steps). Default: the loss, forward and backward."""
        self.loss = compile(self.loss)

    def loss(self, batch: Batch) -> StepOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement loss() or override step()")

    def step(self, batch: Batch) -> Dict[str, float]:
        optimizer = self.optimizers["model"]
        self.train()
        with self.autocast():
            out = self.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        self.step_index += 1
        return {"loss": out.loss.detach(), **{k: v.detach() for k, v in out.logs.items()}}

    def supervised_update(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
                          label_smoothing: float = 0.0, weight: float = 1.0) -> torch.Tensor:
        """One optimizer step on ``weight`` x the cross-entropy of ``model`` on the labeled batch
        (a teacher's supervised phase, a student's finetuning); returns the unweighted loss."""
        with self.autocast():
            loss = F.cross_entropy(upcast(model(batch.x_l)), batch.y_l, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        (weight * loss).backward()
        optimizer.step()
        return loss.detach()

    def eval_model(self) -> nn.Module:
        """The model that is evaluated and returned at the end."""
        return self.models["model"]

    def eval_models(self) -> Dict[str, nn.Module]:
        """Further models to evaluate, by name (logged as NAME_test_accuracy)."""
        return {}

    def train(self) -> None:
        self.models.train()

    def to(self, device) -> "Method":
        self.models.to(device)
        return self

    # --- state --------------------------------------------------------------------------
    def extra_state(self) -> dict:
        """Method-specific state beyond models and optimizers (override and extend)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {
            "models": self.models.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "generator": self.generator.get_state(),
            "device_generator": None if self._device_generator is None else self._device_generator.get_state(),
            "step_index": self.step_index,
            "extra": self.extra_state(),
            "pseudo_labels": (None if self.pseudo_label_adjustment is None
                              else self.pseudo_label_adjustment.state_dict()),
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.models.load_state_dict(state["models"])
            if set(state["optimizers"]) != set(self.optimizers):
                raise KeyError(f"optimizers {sorted(state['optimizers'])} vs {sorted(self.optimizers)}")
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            self.generator.set_state(state["generator"])
            if state.get("device_generator") is not None:
                device = next(self.models.parameters()).device
                self.device_generator(device).set_state(state["device_generator"])
            self.step_index = int(state["step_index"])
            self.load_extra_state(state["extra"])
            if self.pseudo_label_adjustment is not None and state.get("pseudo_labels") is not None:
                self.pseudo_label_adjustment.load_state_dict(state["pseudo_labels"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not match method {self.name!r}: {exc}") from None


def learning_rate(optimizer: torch.optim.Optimizer):
    """The learning rate of the optimizer's first group (the student's eta_S in MPL): a float, or
    the device tensor that --capture keeps there, left on the device (reading it would be a sync)."""
    return optimizer.param_groups[0]["lr"]


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision (autocast) outputs; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def fused_forward(model, *views):
    """One forward (one batch-norm batch) over several batches concatenated; returns the logits
    split back, upcast to float32 when the forward ran in half precision (float64 stays)."""
    logits = upcast(model(torch.cat(views)))
    return logits.split([len(v) for v in views])


def fused_features_and_logits(model, *views):
    """``fused_forward`` that also returns the features the classifier reads (for heads on them:
    projections, rotation and distance heads), both split back per view."""
    features, logits = features_and_logits(model, torch.cat(views))
    sizes = [len(v) for v in views]
    return features.split(sizes), upcast(logits).split(sizes)


def head_per_view(head: nn.Module, features) -> Tuple[torch.Tensor, ...]:
    """A head over several views' features in one call (one kernel per layer), split back."""
    return upcast(head(torch.cat(features))).split([len(f) for f in features])


def resolve_steps(name: str, value, total_steps: int) -> int:
    """A phase or ramp length given as a step count (0, 1, 2, ...) or, below 1, as a fraction of
    the run (0.1 = 10% of ``total_steps``), so that phases scale with ``--steps``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{name} must be a step count >= 0 or a fraction of the run in (0, 1), got {value!r}")
    if 0 < value < 1:
        return int(round(value * total_steps))
    if value != int(value):
        raise ConfigError(f"{name}={value}: a step count must be a whole number (or a fraction below 1)")
    return int(value)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])



