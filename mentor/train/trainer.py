"""The step-based trainer: data, optimizers, schedule, EMA, evaluation, checkpoints, logs.

It never names a method: everything method-specific happens in ``Method.step``.
Files in the run folder (when ``config.out`` is set):
  config.json    every setting          split.json     labeled / unlabeled indices and seed
  metrics.jsonl  one line per evaluation checkpoint.pt  latest state, written atomically
  summary.json   final figures and every hyper-parameter
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import random
import time
import warnings
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..augment import FeatureViews, ImageViews, RandAugment
from ..augment.views import CachedViews
from ..data import ArrayDataset, SemiSupervisedStream, Split
from ..data.arrays import input_spec
from ..data.pools import MemoryPool
from ..errors import CheckpointError, ConfigError, TrainingError
from ..methods import Method, create_method
from ..methods.base import LabeledPool, UnlabeledPool
from ..models import ModelFactory
from ..models.pretrained import exempt_from_weight_decay, parameter_lr_scales
from ..pseudo_labels import eval_batches
from ..data.files import check_output, read_json, read_jsonl, write_atomically, write_json_atomically
from ..data.fingerprint import check_unchanged, input_fingerprint, new_run_id
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RESUME_FREE, TrainConfig
from . import distributed
from .ema import SyncFreeEMA
from .run_data import prepare_data
from .schedule import lr_multiplier
from ..options import resolve_device

CHECKPOINT = "checkpoint.pt"
INFERENCE = "inference.json"
INPUTS = "inputs.json"  # the run's id and the fingerprints of the files it read (mentor.data.fingerprint)


def make_optimizer(config: TrainConfig, params, lr: Optional[float] = None,
                   lr_scales: Optional[Dict[int, float]] = None, no_decay: frozenset = frozenset()) -> torch.optim.Optimizer:
    """SGD, Nesterov, Adam or AdamW. Weight decay skips batch-norm parameters and biases (every
    tensor of one dimension), as FixMatch does, unless config.decay_bn_and_bias. ``lr_scales``
    ({id(parameter): multiplier}, from layer-wise decay and the backbone scale) splits the
    parameters into groups by rate, the largest rate first (the classifier's: MPL reads the
    student's rate from the first group). A parameter scaled to 0 is frozen. ``no_decay``: ids of
    parameters a model exempts from weight decay (a timm ViT's position embedding and class
    token, its ``no_weight_decay()``, as timm and USB exempt them)."""
    lr = config.lr if lr is None else lr
    params = [p for p in params if p.requires_grad]
    scales = lr_scales or {}
    groups: Dict[tuple, dict] = {}
    for p in params:
        scale = scales.get(id(p), 1.0)
        if scale == 0:
            continue
        decay = config.weight_decay if config.decay_bn_and_bias or (p.ndim > 1 and id(p) not in no_decay) else 0.0
        group = groups.setdefault((-scale, -decay), {"params": [], "weight_decay": decay, "lr": lr * scale})
        group["params"].append(p)
    groups = [groups[key] for key in sorted(groups)]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum,
                           nesterov=config.optimizer == "nesterov" and config.momentum > 0)


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


def phase_multiplier(step: int, phase: Tuple[int, int], schedule: str, warmup_steps: int) -> float:
    """The schedule's multiplier with progress counted within ``phase`` = (start, end) steps."""
    start, end = phase
    return lr_multiplier(max(0, step - start), max(1, end - start), schedule, warmup_steps)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Trains one method on one dataset. ``dataset`` overrides ``config.dataset`` (for arrays
    built in Python); ``eval_data`` overrides the test split (e.g. a transductive evaluation)."""

    def __init__(self, config: TrainConfig, dataset: Optional[ArrayDataset] = None,
                 eval_data: Optional[Tuple[np.ndarray, np.ndarray]] = None, load_weights: bool = True):
        self.config = config.validate()
        self.run_id: Optional[str] = None  # set when the run's folder is made or bound (inputs.json)
        self.dist = distributed.context()
        self.device = resolve_device(config.device)
        if self.dist.active and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        dataset, self.split = prepare_data(config, dataset)
        self.dataset = dataset
        # The data through one interface, whichever kind the dataset is (arrays in memory, or
        # shards on disk): stored examples by index, channel statistics, the unlabeled pool and
        # the test split as pools (mentor.data.pools) that the stream and evaluation read.
        self.test_pool = dataset.test_pool(self.device, eval_data)
        self.x_eval, self.y_eval = getattr(self.test_pool, "x", None), getattr(self.test_pool, "y", None)
        self.x_val = torch.as_tensor(dataset.take_train(self.split.validation), device=self.device)
        self.y_val = torch.as_tensor(dataset.y_train[self.split.validation], device=self.device)

        seed_everything(config.seed)
        # load_weights=False: a run rebuilt from its checkpoint needs no pretrained weights file
        model_factory = ModelFactory(config.model, dataset.input_shape, dataset.num_classes, load_weights,
                                     **config.model_options)
        self.input_normalization = model_factory.normalization()
        self.method: Method = create_method(config.method, model_factory, dataset.num_classes,
                                            seed=config.seed, **config.method_options).to(self.device)
        on_cuda = self.device.type == "cuda"
        self.channels_last = dataset.is_image and (on_cuda if config.channels_last is None else config.channels_last)
        if self.channels_last:
            self.method.models.to(memory_format=torch.channels_last)
        if config.precision == "bf16" or (config.precision == "auto" and on_cuda):
            self.method.amp = (self.device.type, torch.bfloat16)
        self.views = self._make_views()
        if self.method.strong_view == "required" and not self.views.has_strong:
            raise ConfigError(f"method {config.method!r} trains on a strong view of the unlabeled data; "
                              "for feature (non-image) data pass --strong-noise STD")
        if self.method.second_view and not self.views.noisy:
            raise ConfigError(f"method {config.method!r} compares two noisy views of each input, but the views "
                              "have no noise and would be identical; pass --input-noise STD "
                              "(or keep image augmentation on)")
        if config.sync_bn:
            if self.device.type != "cuda":
                raise ConfigError("--sync-bn needs CUDA (SyncBatchNorm has no CPU kernel); without it each rank "
                                  "normalises its own batch and rank 0's running statistics are broadcast")
            for name, model in self.method.models.items():
                self.method.models[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        lr_scales = {}
        if config.layer_decay != 1.0 or config.backbone_lr_scale != 1.0:
            for model in self.method.models.values():
                lr_scales.update(parameter_lr_scales(model, config.layer_decay, config.backbone_lr_scale))
        self.method.configure_optimizers(partial(make_optimizer, config, lr_scales=lr_scales,
                                                 no_decay=exempt_from_weight_decay(self.method.models.values())))
        for optimizer in self.method.optimizers.values():  # gradients averaged over the ranks
            self.dist.attach(optimizer)
        self.dist.broadcast(self._model_tensors())  # every rank starts from rank 0's weights
        self.pool = dataset.unlabeled_pool(self.split, self.device)
        reason = self.method.needs_pool_in_memory
        if self.pool.streamed and reason:
            raise ConfigError(f"method {config.method!r} {reason}, so it cannot stream its unlabeled pool from "
                              "shards; use a method that draws batches (fixmatch, uda, meta_pseudo_labels, ...) or "
                              "an in-memory dataset")
        self.pool = self.method.choose_pool(self.pool)
        self.method.num_unlabeled = len(self.pool)
        self.method.setup(config.steps)
        if config.capture:  # before the schedulers: they keep each rate's tensor as its initial value
            self._tensor_learning_rates()
        phases = self.method.optimizer_phases()
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(
                opt, partial(phase_multiplier, phase=phases.get(name, (0, config.steps)), schedule=config.schedule,
                             warmup_steps=config.warmup_steps))
            for name, opt in self.method.scheduled_optimizers().items()
        }
        if config.capture:
            self._capture()
        self.ema = None
        if config.ema_decay is not None:
            # Parameters and BN buffers are both averaged, with no device read per update.
            self.ema = SyncFreeEMA(self.method.eval_model(), config.ema_decay)
        if config.compile:
            for model in self.method.models.values():
                model.compile()
        self.stream = self._make_stream()
        self.method.unlabeled_pool = UnlabeledPool(self.stream.x_u, self.views.eval,
                                                   self.views.strong if self.views.has_strong else None,
                                                   self.pool.indices, weak=self.views.weak)
        self.method.open_run = load_run
        self.method.collective = self.dist
        self.method.labeled_pool = LabeledPool(self.stream.x_l, self.stream.y_l, self.views.eval, self.views.labeled,
                                               list(self.split.labeled))
        self.step = 0
        self.elapsed = 0.0  # seconds of training steps, over every process of the run
        self.wall = 0.0     # seconds in fit(), evaluations and checkpoints included, over every process
        self.history: List[dict] = []
        self.writer = None

    def _model_tensors(self, buffers_only: bool = False):
        """The method's parameters and buffers; ``buffers_only``: its floating buffers (the
        batch-norm statistics, which each rank updates on its own slice)."""
        models = self.method.models
        if buffers_only:
            return [b for b in models.buffers() if b.dtype.is_floating_point]
        return [*models.parameters(), *models.buffers()]

    def _capture(self) -> None:
        """--capture: the method's loss (forward, and through AOTAutograd its backward) and each
        optimizer step compiled into static graphs, which torch.compile's reduce-overhead mode
        replays as CUDA graphs on a GPU (on the CPU: inductor kernels, the same numbers as eager
        within float rounding; tests/test_capture.py). Learning rates become device tensors the
        scheduler fills in place, so a new rate is new data, not a new graph."""
        method = self.method
        blocker = method.capture_blocker()
        if blocker is not None:
            from ..registry import METHODS
            able = sorted(name for name in METHODS.names() if METHODS.get(name).capturable)
            raise ConfigError(f"--capture: method {self.config.method!r} {blocker}, which static graphs cannot "
                              f"hold; capturable methods: {', '.join(able)}")
        # Random ops inside the graphs draw from the generators as eager ops do (inductor's own
        # random numbers would give other dropout masks than the eager reference).
        import torch._inductor.config as inductor_config
        inductor_config.fallback_random = True
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        method.compile_step(partial(torch.compile, mode=mode))
        for optimizer in method.optimizers.values():  # after the schedulers, which wrap step() themselves
            optimizer.step = torch.compile(optimizer.step, mode=mode)

    def _tensor_learning_rates(self) -> None:
        for optimizer in self.method.optimizers.values():
            for group in optimizer.param_groups:
                if not torch.is_tensor(group["lr"]):
                    group["lr"] = torch.tensor(float(group["lr"]), device=self.device)

    def _make_views(self):
        ds, cfg = self.dataset, self.config
        if getattr(ds, "cached_views", None):  # embeddings of augmented images, cached (mentor.embedding)
            if cfg.strong_noise:
                raise ConfigError("--strong-noise: embedded images have cached strong views (RandAugment + Cutout)")
            return CachedViews(*ds.cached_views, cfg.input_noise)
        if not ds.is_image:
            return FeatureViews(cfg.strong_noise, cfg.input_noise)
        if cfg.strong_noise:
            raise ConfigError("--strong-noise is for feature data; images get RandAugment + Cutout as their strong view")
        # A pretrained model's inputs are standardised as in its pretraining, else with the data's statistics.
        mean, std = self.input_normalization or ds.channel_stats(self.split.labeled)
        wants_strong = self.method.strong_view != "unused" and cfg.randaugment_ops + cfg.cutout > 0
        randaugment = RandAugment(ds.augment_set, cfg.randaugment_ops, cfg.cutout, cfg.randaugment_magnitude) if wants_strong else None
        return ImageViews(mean, std, hflip=ds.hflip, translate=cfg.translate, randaugment=randaugment,
                          augment=cfg.augment, channels_last=self.channels_last, input_noise=cfg.input_noise)

    def _make_stream(self) -> SemiSupervisedStream:
        ds, split, cfg = self.dataset, self.split, self.config
        as_tensor = partial(torch.as_tensor, device=self.device)
        method = self.method
        return SemiSupervisedStream(as_tensor(ds.take_train(split.labeled)), as_tensor(split.labels(ds.y_train)),
                                    self.pool, cfg.batch_size, cfg.unlabeled_batch_size, seed=cfg.seed,
                                    views=self.views,
                                    make_strong=method.strong_view != "unused" and not method.draws_own_unlabeled,
                                    make_second_view=method.second_view, rank=self.dist.rank, world=self.dist.world,
                                    workers=ds.workers, make_labeled_strong=method.labeled_strong_view,
                                    make_medium=method.medium_view)

    # --- files --------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.config.out, name)

    def _state(self) -> dict:
        return {
            "step": self.step,
            "run_id": self.run_id,
            "elapsed": self.elapsed,
            "wall": self.wall,
            "config": self.config.to_dict(),
            "split_labeled": torch.tensor(self.split.labeled),
            "method": self.method.state_dict(),
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ema": None if self.ema is None else self.ema.state_dict(),
            "stream": self.stream.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # every rank's own draws (rank 0's are also the ones above): resumed as they were
            "world_size": self.dist.world,
            "per_rank": self.dist.gather({"view_generator": self.stream.view_generator.get_state(),
                                          "torch_rng": torch.get_rng_state()}),
        }

    def _restore(self, state: dict, training: bool = True) -> None:
        """The checkpoint's state into this trainer; ``training``: to continue the run (then the
        number of processes must match), else to use the model (evaluate, predict, label)."""
        if self.run_id is not None and state.get("run_id") not in (None, self.run_id):
            raise CheckpointError(f"the checkpoint in {self.config.out} was written by another run (run id "
                                  f"{state.get('run_id')}, the folder's {self.run_id}): copied from another run "
                                  "folder? Put back this run's checkpoint, or train afresh")
        # Settings added since a checkpoint was written take their defaults (what that run had).
        saved = {**TrainConfig().to_dict(), **state["config"]}
        saved = {k: v for k, v in saved.items() if k not in RESUME_FREE}
        now = {k: v for k, v in self.config.to_dict().items() if k not in RESUME_FREE}
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            detail = ", ".join(f"{k}: {saved.get(k)!r} in checkpoint vs {now.get(k)!r} now" for k in diff)
            raise CheckpointError(f"the checkpoint belongs to a different run ({detail})")
        if state["split_labeled"].tolist() != self.split.labeled:
            raise CheckpointError("the checkpoint's labeled split differs from this run's (data changed?)")
        try:
            self.method.load_state_dict(state["method"])
            for k, s in self.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.stream.load_state_dict(state["stream"])
            if self.config.capture:  # a checkpoint of an eager run holds float rates
                self._tensor_learning_rates()
        except (KeyError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not match this run: {exc}") from None
        world = int(state.get("world_size", 1))
        if training and world != self.dist.world:
            raise CheckpointError(f"the checkpoint was written by a run of {world} process(es); resume it with "
                                  f"the same number (this run has {self.dist.world})")
        torch.set_rng_state(state["torch_rng"])
        if training and self.dist.active:
            mine = state["per_rank"][self.dist.rank]
            self.stream.view_generator.set_state(mine["view_generator"])
            torch.set_rng_state(mine["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.wall = float(state.get("wall", state["elapsed"]))  # checkpoints before 2026-12 lack it

    def _prepare_out(self, resume: bool) -> None:
        out = self.config.out
        if out is None:
            if resume:
                raise ConfigError("--resume needs --out, the folder of the run to continue")
            return
        os.makedirs(check_output(out, folder=True), exist_ok=True)
        has_checkpoint = os.path.exists(self._path(CHECKPOINT))
        if resume:
            if not has_checkpoint:
                raise CheckpointError(f"nothing to resume: no {CHECKPOINT} in {out}")
            self.bind_inputs()
            self._restore(load_checkpoint(self._path(CHECKPOINT), map_location=self.device))
            self.dist.barrier()  # every rank has read the checkpoint before rank 0 rewrites the metrics
            self._truncate_metrics()
            return
        if has_checkpoint or os.path.exists(self._path("metrics.jsonl")):
            raise ConfigError(f"{out} already holds a run; pass --resume (resume=True in Python) to continue it or choose another --out")
        self.dist.barrier()  # every rank has checked the folder before rank 0 writes into it
        if self.dist.is_main:
            self.run_id = new_run_id()
            write_json_atomically(self._path(INPUTS), {"run_id": self.run_id, "inputs": self._input_fingerprint()})
            with open(self._path("config.json"), "w") as f:
                json.dump(self.config.to_dict(), f, indent=2)
            self.split.save(self._path("split.json"))
            write_json_atomically(self._path(INFERENCE), self.inference_spec())

    def _input_fingerprint(self) -> dict:
        return input_fingerprint(self.config.data_path, self.config.dataset_options)

    def bind_inputs(self) -> None:
        """This trainer to the run in its folder: the inputs it reads now must be those the run
        recorded (inputs.json), and its run id is the one checkpoints must carry. Runs from
        before inputs.json are taken as they are."""
        path = self._path(INPUTS)
        if not os.path.exists(path):
            return
        saved = read_json(path)
        check_unchanged(saved.get("inputs", {}), self._input_fingerprint(), f"the run in {self.config.out}",
                        "Restore them, or train afresh into another --out")
        self.run_id = saved.get("run_id")

    def inference_spec(self) -> dict:
        """What a trained model needs to take raw inputs without the training data: the input
        shape, classes and their names, and the evaluation transform (image channel statistics,
        a table's columns and scaling). Written as OUT/inference.json (mentor.inference reads it)."""
        spec = input_spec(self.dataset)
        spec.update(model=self.config.model, model_options=self.config.model_options)
        if self.dataset.is_image and not spec.get("embedding"):
            spec["image_mean"] = self.views.mean.flatten().tolist()
            spec["image_std"] = self.views.std.flatten().tolist()
        return spec

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint (a kill between the two writes)."""
        path = self._path("metrics.jsonl")
        if not os.path.exists(path):
            return
        records = [r for r in read_jsonl(path) if r["step"] <= self.step]  # a torn last line is dropped
        if self.dist.is_main:
            write_atomically(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
        self.history = records

    # --- the loop -----------------------------------------------------------------------
    def evaluate(self) -> Dict[str, float]:
        """Test metrics (test_accuracy, ema_test_accuracy, teacher_test_accuracy, ...) and, with a
        validation split, the same on it (val_accuracy, ...): choose settings on val_, never test_."""
        models = {"": self.method.eval_model(), **({"ema_": self.ema.module} if self.ema is not None else {}),
                  **{f"{name}_": model for name, model in self.method.eval_models().items()}}
        splits = {"test": self.test_pool}
        if len(self.y_val):
            splits["val"] = MemoryPool(self.x_val, y=self.y_val)
        result = {}
        for split, pool in splits.items():
            for prefix, model in models.items():
                # each rank scores its contiguous share (a streamed split: decoded ahead by workers)
                batches = pool.batches(1024, self.dist.rank, self.dist.world, self.device, self.dataset.workers)
                scores = evaluate_batches(model, batches, len(pool), self.device, self.views.eval,
                                          self.method.autocast, self.dist)
                result.update({f"{prefix}{split}_{k}": v for k, v in scores.items()})
        return result

    def final_model(self) -> torch.nn.Module:
        """The model a user of the run gets: its EMA when the run kept one, else the method's
        evaluated model (mentor.inference's ``auto``)."""
        return self.ema.module if self.ema is not None else self.method.eval_model()

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """The final model's (n, C) probabilities for the stored examples ``x`` (e.g. self.x_val),
        in eval mode."""
        logits = eval_batches(self.final_model(), self.views.eval, x, self.device, batch_size,
                              autocast=self.method.autocast)
        if not len(logits):
            return np.zeros((0, self.dataset.num_classes), dtype=np.float32)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def predict_classes(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """The final model's class for each stored example of ``x``, in eval mode."""
        proba = self.predict_proba(x, batch_size)
        return proba.argmax(-1) if len(proba) else np.zeros(0, dtype=np.int64)

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.config.out is None or not self.dist.is_main:
            return
        with open(self._path("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.config.tensorboard:
            if self.writer is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
                self.writer = SummaryWriter(self._path("tensorboard"), purge_step=record["step"])
            for key, value in record.items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        self.writer.add_scalar(f"{key}/{sub}", v, record["step"])
                elif key != "step":
                    self.writer.add_scalar(key, value, record["step"])
            self.writer.flush()

    def train_step(self) -> Dict[str, torch.Tensor]:
        """One training step as fit() runs it: the method's step on the next batch, the learning
        rate schedules, the batch-norm broadcast of a multi-process run and the EMA; returns the
        step's logs (device tensors, not read). The step counter is fit()'s."""
        if self.config.capture:
            # A new iteration for the CUDA graphs: the previous step's graph outputs (its logs,
            # already summed) may be overwritten by this step's replays.
            torch.compiler.cudagraph_mark_step_begin()
        logs = self.method.step(self.stream.next())
        with warnings.catch_warnings():
            # A phase may leave an optimizer idle (the Pseudo-Label student early on);
            # its schedule still advances with the step count, which is what we want.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for s in self.schedulers.values():
                s.step()
        if self.dist.active:  # batch-norm statistics: rank 0's on every rank (DDP's broadcast_buffers)
            self.dist.broadcast(self._model_tensors(buffers_only=True))
        if self.ema is not None:
            self.ema.update_parameters(self.method.eval_model())
        return logs

    def fit(self, resume: bool = False) -> dict:
        self._prepare_out(resume)
        cfg = self.config
        # Each log is averaged over the steps that produced it (a phase may log keys others do not).
        sums: Dict[str, torch.Tensor] = {}
        counts: Dict[str, int] = {}
        last: Dict[str, float] = {}
        start_step = self.step
        started = fit_started = time.perf_counter()
        wall_before = self.wall
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress or not self.dist.is_main,
                   desc=cfg.method, leave=False)
        # The first step whose logs held a NaN or an infinity, kept on the device (no sync per
        # step) and read at each evaluation, before anything is logged or checkpointed.
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        while self.step < cfg.steps:
            logs = self.train_step()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float32).detach()
                counts[k] = counts.get(k, 0) + 1
            if logs:
                values = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(())
                                      for v in logs.values()])
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(values).all(), self.step + 1, first_bad)
            self.step += 1
            bar.update(1)
            at_eval = cfg.eval_every and self.step % cfg.eval_every == 0
            if at_eval or self.step == cfg.steps:
                self._stop_if_not_finite(int(first_bad), sums, bar)
                train_logs = self._mean_logs(sums, counts)
                sums, counts = {}, {}
                self.elapsed += time.perf_counter() - started
                started = time.perf_counter()
                last = {"step": self.step, **self.evaluate(), "train": train_logs,
                        "lr": {k: float(s.get_last_lr()[0]) for k, s in self.schedulers.items()},
                        "elapsed_s": round(self.elapsed, 3)}
                self.wall = wall_before + time.perf_counter() - fit_started
                last["wall_s"] = round(self.wall, 3)
                bar.set_postfix(acc=f"{last['test_accuracy']:.3f}", loss=f"{train_logs.get('loss', 0.0):.3f}")
                self._log(last)
                if cfg.out is not None:
                    state = self._state()  # a collective: every rank gives its random state
                    if self.dist.is_main:
                        save_checkpoint(state, self._path(CHECKPOINT))
                    self.dist.barrier()
        bar.close()
        self.stream.close()  # a streamed pool's decoding workers end here (a later fit() starts them again)
        if self.writer is not None:
            self.writer.close()
        if not last:  # resumed a finished run: report its final state
            last = {"step": self.step, **self.evaluate()}
        return self._summarise(last, self.step - start_step)

    def _stop_if_not_finite(self, first_bad: int, sums: Dict[str, torch.Tensor], bar) -> None:
        """A TrainingError naming the step and the terms that went NaN or infinite (or the
        parameters that did), before the bad state is logged or checkpointed: the run folder keeps
        its last good checkpoint."""
        terms = [k for k, v in sums.items() if not bool(torch.isfinite(torch.as_tensor(v)).all())]
        params = [name for name, p in self.method.models.named_parameters() if not bool(torch.isfinite(p).all())]
        if first_bad < 0 and not params:
            return
        bar.close()
        what = f"the training term(s) {', '.join(terms)}" if terms else "no loss, but the parameters"
        where = f"at step {first_bad}" if first_bad >= 0 else f"by step {self.step}"
        kept = (f"; {self.config.out} keeps its last good checkpoint (step {self.history[-1]['step']})"
                if self.config.out and self.history else "")
        raise TrainingError(
            f"training stopped {where}: {what} became NaN or infinite"
            + (f" (first parameter: {params[0]})" if params else "") + kept
            + f". Lower --lr (now {self.config.lr:g}) or the method's weights, and check the inputs' scale")

    def _mean_logs(self, sums: Dict[str, torch.Tensor], counts: Dict[str, int]) -> Dict[str, float]:
        """Each training log's mean over its steps, and over the ranks."""
        keys = sorted(sums)
        if not keys:
            return {}
        means = torch.stack([sums[k].to(self.device, torch.float32).reshape(()) / counts[k] for k in keys])
        means = self.dist.sum(means) / self.dist.world
        return dict(zip(keys, means.cpu().tolist()))

    def _summarise(self, last: dict, steps_this_process: int) -> dict:
        summary = {
            "method": self.config.method,
            "dataset": self.dataset.name,
            "final_test_accuracy": last["test_accuracy"],
            "final_test_loss": last["test_loss"],
            "steps": self.step,
            "wall_seconds": round(self.elapsed, 3),
            "seconds_per_step": self.elapsed / max(1, self.step),
            "num_labeled": len(self.split.labeled),
            "num_unlabeled": len(self.pool),
            "device": str(self.device),
            "method_hparams": self.method.hparams,
            "config": self.config.to_dict(),
        }
        extra_accuracies = [k for k in last if k.endswith(("test_accuracy", "val_accuracy")) and k != "test_accuracy"]
        for key in extra_accuracies:  # ema_test_accuracy, teacher_test_accuracy, ...
            summary[f"final_{key}"] = last[key]
        # The median of the last N evaluations (FixMatch reports N = 20): less noisy than the
        # final value and, unlike the best value, not a selection on the test set.
        recent = [r for r in self.history if "test_accuracy" in r][-self.config.median_of:]
        if recent:
            summary["median_of_last"] = len(recent)
            for key in ["test_accuracy", *extra_accuracies]:
                if all(key in r for r in recent):
                    summary[f"median_last_{key}"] = statistics.median(r[key] for r in recent)
        if self.dist.active:
            summary["processes"] = self.dist.world
        if self.config.out is not None and self.dist.is_main:
            summary["split_file"] = "split.json"
            with open(self._path("summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
        return summary


def train(config: TrainConfig, resume: bool = False, **kwargs) -> dict:
    """Run one training job; returns the summary dict (also written to OUT/summary.json)."""
    return Trainer(config, **kwargs).fit(resume=resume)


def load_run(out: str, device: str = "auto", dataset: Optional[ArrayDataset] = None) -> Trainer:
    """Rebuild the trainer of a finished or interrupted run from its folder, state restored.
    Runs trained on in-memory arrays need the same ``dataset`` passed again."""
    path = os.path.join(out, CHECKPOINT)
    state = load_checkpoint(path, map_location=resolve_device(device))
    config = TrainConfig.from_dict({**state["config"], "out": out, "device": device, "progress": False})
    trainer = Trainer(config, dataset=dataset, load_weights=False)
    trainer.bind_inputs()
    trainer._restore(state, training=False)
    return trainer


__all__ = ["Trainer", "TrainConfig", "evaluate", "load_run", "train", "Split"]
