"""The step-based trainer: it binds what mentor.train.builders build (method, views, optimizers,
schedules, stream) and runs the loop: steps, EMA, evaluations, checkpoints and logs in the run's
folder (mentor.train.run_folder). It never names a method: everything method-specific happens
in ``Method.step``."""
from __future__ import annotations

import os
import statistics
import time
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..classical import ENSEMBLE_FILE, MODEL_FILE
from ..data import ArrayDataset, Split
from ..data.arrays import input_spec
from ..data.pools import MemoryPool
from ..errors import CheckpointError, ConfigError, TrainingError
from ..methods.base import LabeledPool, RunContext, UnlabeledPool
from ..models.predict import predict
from ..options import resolve_device
from . import distributed
from .builders import (autocast_of, build_method, build_optimizers, build_schedules, build_stream, build_views,
                       tensor_learning_rates)
from .checkpoint import load_checkpoint
from .config import RESUME_FREE, TrainConfig
from .ema import SyncFreeEMA
from .evaluation import evaluate, evaluate_batches
from .run_data import prepare_data
from .run_folder import CHECKPOINT, RunFolder, check_run_id



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
        self._bind_data(*prepare_data(config, dataset), eval_data)
        self.method, self.input_normalization, self.channels_last = build_method(config, self.dataset, self.device,
                                                                                 load_weights)
        self.views = build_views(config, self.dataset, self.method, self.split, self.input_normalization,
                                 self.channels_last)
        build_optimizers(config, self.method, self.device, self.dist)
        self.dist.broadcast(self._model_tensors())  # every rank starts from rank 0's weights
        self.pool = self._unlabeled_pool()
        self.stream = build_stream(config, self.dataset, self.split, self.pool, self.views, self.method, self.device,
                                   self.dist)
        self.method.bind(self._run_context())
        self.method.setup(config.steps)
        self.schedulers = build_schedules(config, self.method, self.device)
        # Parameters and BN buffers are both averaged, with no device read per update.
        self.ema = SyncFreeEMA(self.method.eval_model(), config.ema_decay) if config.ema_decay is not None else None
        if config.compile:
            for model in self.method.models.values():
                model.compile()
        self.step = 0
        self.elapsed = 0.0  # seconds of training steps, over every process of the run
        self.wall = 0.0     # seconds in fit(), evaluations and checkpoints included, over every process
        self.history: List[dict] = []
        self.folder = RunFolder(config.out) if config.out is not None else None

    def _bind_data(self, dataset, split, eval_data) -> None:
        """The data through one interface (mentor.data.base.Dataset), whichever kind it is (arrays
        in memory, or shards on disk): the test split and the held-out labels as the evaluation reads them."""
        self.dataset, self.split = dataset, split
        self.test_pool = dataset.test_pool(self.device, eval_data)
        self.x_eval, self.y_eval = self.test_pool.x, self.test_pool.y
        self.x_val = torch.as_tensor(dataset.take_train(split.validation), device=self.device)
        self.y_val = torch.as_tensor(dataset.y_train[split.validation], device=self.device)

    def _unlabeled_pool(self):
        pool = self.dataset.unlabeled_pool(self.split, self.device)
        reason = self.method.needs_pool_in_memory
        if pool.streamed and reason:
            raise ConfigError(f"method {self.config.method!r} {reason}, so it cannot stream its unlabeled pool from "
                              "shards; use a method that draws batches (fixmatch, uda, meta_pseudo_labels, ...) or "
                              "an in-memory dataset")
        return self.method.choose_pool(pool)

    def _run_context(self) -> RunContext:
        views, stream = self.views, self.stream
        return RunContext(
            amp=autocast_of(self.config, self.device), num_unlabeled=len(self.pool),
            unlabeled_pool=UnlabeledPool(stream.x_u, views.eval, views.strong if views.has_strong else None,
                                         self.pool.indices, weak=views.weak),
            labeled_pool=LabeledPool(stream.x_l, stream.y_l, views.eval, views.labeled, list(self.split.labeled)),
            open_run=load_run, collective=self.dist)

    def _model_tensors(self, buffers_only: bool = False):
        """The method's parameters and buffers; ``buffers_only``: its floating buffers (the
        batch-norm statistics, which each rank updates on its own slice)."""
        models = self.method.models
        if buffers_only:
            return [b for b in models.buffers() if b.dtype.is_floating_point]
        return [*models.parameters(), *models.buffers()]

    # --- checkpoints --------------------------------------------------------------------
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
        check_run_id(state, self.run_id, self.config.out)
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
                tensor_learning_rates(self.method, self.device)
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

    def _prepare_out(self, resume: bool, check_inputs: bool = True) -> None:
        if self.folder is None:
            if resume:
                raise ConfigError("--resume needs --out, the folder of the run to continue")
            return
        self.folder.claim(resume)
        if resume:
            self.bind_inputs(check_inputs)
            self._restore(self.folder.load_checkpoint(self.device))
            self.dist.barrier()  # every rank has read the checkpoint before rank 0 rewrites the metrics
            self.history = self.folder.metrics_until(self.step, rewrite=self.dist.is_main)
            return
        self.dist.barrier()  # every rank has checked the folder before rank 0 writes into it
        if self.dist.is_main:
            self.run_id = self.folder.start(self.config, self.split, self.inference_spec())

    def bind_inputs(self, check_inputs: bool = True) -> None:
        """This trainer to the run in its folder: the inputs it reads now must be those the run
        recorded (unless ``check_inputs`` is False), and its run id is the one checkpoints must
        carry (RunFolder.bind)."""
        if self.folder is not None:
            self.run_id = self.folder.bind(self.config, check_inputs)

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

    def predict_proba(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """The final model's (n, C) probabilities for the stored examples ``x`` (e.g. self.x_val),
        in eval mode."""
        probs = predict(self.final_model(), self.views.eval, x, self.device, batch_size, autocast=self.method.autocast)
        return probs.cpu().numpy() if len(probs) else np.zeros((0, self.dataset.num_classes), dtype=np.float32)

    def predict_classes(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """The final model's class for each stored example of ``x``, in eval mode."""
        proba = self.predict_proba(x, batch_size)
        return proba.argmax(-1) if len(proba) else np.zeros(0, dtype=np.int64)

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.folder is not None and self.dist.is_main:
            self.folder.log(record, self.config.tensorboard)

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

    def fit(self, resume: bool = False, check_inputs: bool = True) -> dict:
        """Trains (``resume``: continues the run in its folder, whose recorded inputs must be
        unchanged unless ``check_inputs`` is False) and returns the summary."""
        self._prepare_out(resume, check_inputs)
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
            values = []
            for k, v in logs.items():
                value = torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(())
                sums[k] = sums.get(k, 0.0) + value
                counts[k] = counts.get(k, 0) + 1
                values.append(value)
            if values:
                bad = ~torch.isfinite(torch.stack(values)).all()
                first_bad = torch.where((first_bad < 0) & bad, self.step + 1, first_bad)
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
                        self.folder.save_checkpoint(state)
                    self.dist.barrier()
        bar.close()
        self.stream.close()  # a streamed pool's decoding workers end here (a later fit() starts them again)
        if self.folder is not None:
            self.folder.close()
        if not last:  # resumed a finished run: report its final state
            last = {"step": self.step, **self.evaluate()}
        return self._summarise(last, self.step - start_step)

    def _stop_if_not_finite(self, first_bad: int, sums: Dict[str, torch.Tensor], bar) -> None:
        """A TrainingError naming the step and the terms that went NaN or infinite (or the
        parameters that did), before the bad state is logged or checkpointed: the run folder keeps
        its last good checkpoint."""
        named = dict(self.method.models.named_parameters())
        finite = torch.stack([torch.isfinite(t).all() for t in [*sums.values(), *named.values()]]).tolist()  # one read
        terms = [k for k, ok in zip(sums, finite) if not ok]
        params = [name for name, ok in zip(named, finite[len(sums):]) if not ok]
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
            self.folder.write_summary(summary)
        return summary


def train(config: TrainConfig, resume: bool = False, check_inputs: bool = True, **kwargs) -> dict:
    """Run one training job; returns the summary dict (also written to OUT/summary.json)."""
    return Trainer(config, **kwargs).fit(resume=resume, check_inputs=check_inputs)


def load_run(out: str, device: str = "auto", dataset: Optional[ArrayDataset] = None,
             check_inputs: bool = True) -> Trainer:
    """Rebuild the trainer of a finished or interrupted run from its folder, state restored.
    Runs trained on in-memory arrays need the same ``dataset`` passed again; the inputs it reads
    must be those the run recorded (inputs.json) unless ``check_inputs`` is False."""
    path = os.path.join(out, CHECKPOINT)
    delivered = [f for f in (ENSEMBLE_FILE, MODEL_FILE) if os.path.exists(os.path.join(out, f))]
    if delivered and not os.path.exists(path):
        kind = "an ensemble" if delivered[0] == ENSEMBLE_FILE else "a classical model"
        raise ConfigError(f"{out} holds {kind} that mentor compare --fit-best delivered, not a training run with a "
                          f"{CHECKPOINT}: its test-split figures are in its summary.json; use mentor predict, "
                          "export or report with it")
    state = load_checkpoint(path, map_location=resolve_device(device))
    config = TrainConfig.from_dict({**state["config"], "out": out, "device": device, "progress": False})
    trainer = Trainer(config, dataset=dataset, load_weights=False)
    trainer.bind_inputs(check_inputs)
    trainer._restore(state, training=False)
    return trainer


__all__ = ["Trainer", "TrainConfig", "evaluate", "load_run", "train", "Split"]
