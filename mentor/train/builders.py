"""What a Trainer is built from, in the order it is built: the method and its models, the views
of the data, the optimizers with their schedules (and --capture's graphs), the batch stream,
and the context the method is bound to. Each builder takes what the ones before it made."""
from __future__ import annotations

import random
from functools import partial
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..augment import FeatureViews, ImageViews, RandAugment
from ..augment.views import CachedViews
from ..data import SemiSupervisedStream
from ..errors import ConfigError
from ..methods import Method, create_method
from ..models import ModelFactory
from .config import TrainConfig
from .optim import exempt_from_weight_decay, make_optimizer, parameter_lr_scales
from .schedule import lr_multiplier


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_method(config: TrainConfig, dataset, device: torch.device, load_weights: bool) -> Tuple[Method, tuple, bool]:
    """(the method on ``device``, the pretrained model's input normalisation or None, channels_last).
    ``load_weights`` False: a run rebuilt from its checkpoint needs no pretrained weights file."""
    seed_everything(config.seed)
    factory = ModelFactory(config.model, dataset.input_shape, dataset.num_classes, load_weights, **config.model_options)
    method = create_method(config.method, factory, dataset.num_classes, seed=config.seed,
                           **config.method_options).to(device)
    on_cuda = device.type == "cuda"
    channels_last = dataset.is_image and (on_cuda if config.channels_last is None else config.channels_last)
    if channels_last:
        method.models.to(memory_format=torch.channels_last)
    return method, factory.normalization(), channels_last


def build_views(config: TrainConfig, dataset, method: Method, split, normalization, channels_last: bool):
    """The weak, strong and evaluation views of the data, checked against what the method needs."""
    if dataset.cached_views:  # embeddings of augmented images, cached (mentor.embedding)
        if config.strong_noise:
            raise ConfigError("--strong-noise: embedded images have cached strong views (RandAugment + Cutout)")
        views = CachedViews(*dataset.cached_views, config.input_noise)
    elif not dataset.is_image:
        views = FeatureViews(config.strong_noise, config.input_noise)
    else:
        if config.strong_noise:
            raise ConfigError("--strong-noise is for feature data; images get RandAugment + Cutout as their strong view")
        # A pretrained model's inputs are standardised as in its pretraining, else with the data's statistics.
        mean, std = normalization or dataset.channel_stats(split.labeled)
        wants_strong = method.strong_view != "unused" and config.randaugment_ops + config.cutout > 0
        randaugment = RandAugment(dataset.augment_set, config.randaugment_ops, config.cutout,
                                  config.randaugment_magnitude) if wants_strong else None
        views = ImageViews(mean, std, hflip=dataset.hflip, translate=config.translate, randaugment=randaugment,
                           augment=config.augment, channels_last=channels_last, input_noise=config.input_noise)
    if method.strong_view == "required" and not views.has_strong:
        raise ConfigError(f"method {config.method!r} trains on a strong view of the unlabeled data; "
                          "for feature (non-image) data pass --strong-noise STD")
    if method.second_view and not views.noisy:
        raise ConfigError(f"method {config.method!r} compares two noisy views of each input, but the views "
                          "have no noise and would be identical; pass --input-noise STD "
                          "(or keep image augmentation on)")
    return views


def build_optimizers(config: TrainConfig, method: Method, device: torch.device, dist) -> None:
    """SyncBatchNorm where asked, then the method's optimizers with their learning-rate scales and
    weight-decay exemptions, their gradients averaged over the ranks."""
    if config.sync_bn:
        if device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA (SyncBatchNorm has no CPU kernel); without it each rank "
                              "normalises its own batch and rank 0's running statistics are broadcast")
        for name, model in method.models.items():
            method.models[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    lr_scales: Dict[int, float] = {}
    if config.layer_decay != 1.0 or config.backbone_lr_scale != 1.0:
        for model in method.models.values():
            lr_scales.update(parameter_lr_scales(model, config.layer_decay, config.backbone_lr_scale))
    method.configure_optimizers(partial(make_optimizer, config, lr_scales=lr_scales,
                                        no_decay=exempt_from_weight_decay(method.models.values())))
    for optimizer in method.optimizers.values():
        dist.attach(optimizer)


def phase_multiplier(step: int, phase: Tuple[int, int], schedule: str, warmup_steps: int) -> float:
    """The schedule's multiplier with progress counted within ``phase`` = (start, end) steps."""
    start, end = phase
    return lr_multiplier(max(0, step - start), max(1, end - start), schedule, warmup_steps)


def build_schedules(config: TrainConfig, method: Method, device: torch.device) -> dict:
    """{optimizer name: its learning-rate scheduler}, each over the method's phase for it; with
    --capture, the rates are device tensors (before the schedulers, which keep each rate's tensor
    as its initial value) and the step is compiled (after them, which wrap step() themselves)."""
    if config.capture:
        tensor_learning_rates(method, device)
    phases = method.optimizer_phases()
    schedulers = {
        name: torch.optim.lr_scheduler.LambdaLR(
            opt, partial(phase_multiplier, phase=phases.get(name, (0, config.steps)), schedule=config.schedule,
                         warmup_steps=config.warmup_steps))
        for name, opt in method.scheduled_optimizers().items()
    }
    if config.capture:
        capture(config, method, device)
    return schedulers


def tensor_learning_rates(method: Method, device: torch.device) -> None:
    for optimizer in method.optimizers.values():
        for group in optimizer.param_groups:
            if not torch.is_tensor(group["lr"]):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)


def capture(config: TrainConfig, method: Method, device: torch.device) -> None:
    """--capture: the method's loss (forward, and through AOTAutograd its backward) and each
    optimizer step compiled into static graphs, which torch.compile's reduce-overhead mode
    replays as CUDA graphs on a GPU (on the CPU: inductor kernels, the same numbers as eager
    within float rounding; tests/test_capture.py). Learning rates become device tensors the
    scheduler fills in place, so a new rate is new data, not a new graph."""
    blocker = method.capture_blocker()
    if blocker is not None:
        from ..registry import METHODS
        able = sorted(name for name in METHODS.names() if METHODS.get(name).capturable)
        raise ConfigError(f"--capture: method {config.method!r} {blocker}, which static graphs cannot "
                          f"hold; capturable methods: {', '.join(able)}")
    # Random ops inside the graphs draw from the generators as eager ops do (inductor's own
    # random numbers would give other dropout masks than the eager reference).
    import torch._inductor.config as inductor_config
    inductor_config.fallback_random = True
    mode = "reduce-overhead" if device.type == "cuda" else None
    method.compile_step(partial(torch.compile, mode=mode))
    for optimizer in method.optimizers.values():
        optimizer.step = torch.compile(optimizer.step, mode=mode)


def build_stream(config: TrainConfig, dataset, split, pool, views, method: Method, device: torch.device,
                 dist) -> SemiSupervisedStream:
    """The seeded stream of labeled and unlabeled batches with the views the method asks for."""
    as_tensor = partial(torch.as_tensor, device=device)
    return SemiSupervisedStream(as_tensor(dataset.take_train(split.labeled)), as_tensor(split.labels(dataset.y_train)),
                                pool, config.batch_size, config.unlabeled_batch_size, seed=config.seed, views=views,
                                make_strong=method.strong_view != "unused" and not method.draws_own_unlabeled,
                                make_second_view=method.second_view, rank=dist.rank, world=dist.world,
                                workers=dataset.workers, make_labeled_strong=method.labeled_strong_view,
                                make_medium=method.medium_view)


def autocast_of(config: TrainConfig, device: torch.device) -> Optional[tuple]:
    """(device type, dtype) of the run's autocast: bf16 where asked, or by default on CUDA."""
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"):
        return (device.type, torch.bfloat16)
    return None
