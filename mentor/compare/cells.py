"""Training one cell, and many in long-lived worker processes.

A cell's folder is an ordinary run folder (config.json, split.json, metrics.jsonl,
checkpoint.pt, summary.json; `mentor report` and `mentor predict` open it) plus two files
written atomically once it is finished: predictions.npz (the final model's class for every
held-out and test example, and a content key of each held-out example for pairing across
entries) and cell.json (its figures). A cell with cell.json is done; one killed before it
resumes from its checkpoint. predictions.npz also holds the final model's probabilities
(``val_proba``, ``test_proba``), from which compare builds its ensembles. A baseline's folder
holds split.json, config.json, predictions.npz, cell.json and, for a deliverable baseline, its
fitted model (model.skops, with inference.json: mentor predict opens the folder as a model).

Workers: a process start (Python, torch, the dataset) costs more than a small cell trains, so
``--jobs N`` starts N processes once, each with 1/N of the cores' threads, and feeds them cells.
Each worker keeps the datasets it has loaded. On Linux a worker is killed with its parent
(prctl PR_SET_PDEATHSIG), so a killed comparison leaves no process writing into its folder.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import warnings
from typing import Dict, Iterator, List, Optional

import numpy as np

from ..classical import as_features, probabilities, save_model
from ..data import ArrayDataset
from ..data.arrays import input_spec
from ..files import write_atomically, write_json_atomically
from ..errors import MentorError
from ..train import CHECKPOINT, INFERENCE, TrainConfig, Trainer, load_configured_dataset, prepare_data
from .baselines import fit_baseline
from .plan import Cell

CELL_FILE = "cell.json"
PREDICTIONS = "predictions.npz"


def content_keys(x: np.ndarray) -> np.ndarray:
    """A 64-bit key of each row's bytes: the same example has the same key in every cell and
    seed, whatever its index (datasets whose train/test split depends on the seed included)."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.uint64)
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                     for r in rows], dtype=np.uint64)


def read_cell(folder: str) -> Optional[dict]:
    path = os.path.join(folder, CELL_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_predictions(folder: str) -> Dict[str, np.ndarray]:
    with np.load(os.path.join(folder, PREDICTIONS)) as archive:
        return {k: archive[k] for k in archive.files}


def _save(folder: str, record: dict, predictions: Dict[str, np.ndarray]) -> dict:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **predictions)
    write_atomically(os.path.join(folder, PREDICTIONS), lambda f: f.write(buffer.getvalue()))
    write_json_atomically(os.path.join(folder, CELL_FILE), record)  # last: the cell is done
    return record


def _finish(cell: Cell, folder: str, validation, x_val: np.ndarray, val_true: np.ndarray, val_proba: np.ndarray,
            test: Optional[tuple], seconds: float, **extra) -> dict:
    """Writes a finished cell: its predictions (held-out and, with ``test`` = (x, y,
    probabilities), test examples, each with its content key) and its record; returns the record."""
    val_pred = val_proba.argmax(axis=1) if len(val_proba) else np.zeros(0, dtype=np.int64)
    predictions = {"val_index": np.asarray(validation, dtype=np.int64), "val_key": content_keys(x_val),
                   "val_true": val_true, "val_pred": val_pred, "val_proba": val_proba.astype(np.float32)}
    test_accuracy = None
    if test is not None:
        x_test, y_test, test_proba = test
        test_pred = test_proba.argmax(axis=1) if len(test_proba) else np.zeros(0, dtype=np.int64)
        predictions.update(test_key=content_keys(x_test), test_true=y_test, test_pred=test_pred,
                           test_proba=test_proba.astype(np.float32))
        test_accuracy = float(np.mean(test_pred == y_test))
    record = {"cell": cell.name, "setting": cell.setting.name, "label": cell.entry.label, "method": cell.entry.method,
              "options": cell.entry.options, "baseline": cell.entry.baseline, "seed": cell.seed, "fold": cell.fold,
              "folds": cell.folds, "n_val": int(len(val_true)),
              "val_accuracy": float(np.mean(val_pred == val_true)) if len(val_true) else None,
              "test_accuracy": test_accuracy, "seconds": round(seconds, 3), **extra}
    return _save(folder, record, predictions)


def prepare_folder(folder: str) -> bool:
    """True to resume from the folder's checkpoint; otherwise the folder is emptied (a cell
    killed before its first checkpoint starts again)."""
    if os.path.exists(os.path.join(folder, CHECKPOINT)):
        return True
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    return False


def train_cell(cell: Cell, config: TrainConfig, dataset: Optional[ArrayDataset], with_test: bool) -> dict:
    resume = prepare_folder(config.out)
    trainer = Trainer(config, dataset=dataset)
    summary = trainer.fit(resume=resume)
    test = None
    if with_test:
        test = (trainer.x_eval.cpu().numpy(), trainer.y_eval.cpu().numpy(), trainer.predict_proba(trainer.x_eval))
    return _finish(cell, config.out, trainer.split.validation, trainer.x_val.cpu().numpy(), trainer.y_val.cpu().numpy(),
                   trainer.predict_proba(trainer.x_val), test, summary["wall_seconds"], steps=summary["steps"],
                   num_labeled=summary["num_labeled"], num_unlabeled=summary["num_unlabeled"],
                   model="ema" if trainer.ema is not None else "student")


def fit_classical(entry, config: TrainConfig, dataset: Optional[ArrayDataset], folder: str):
    """Fits a baseline entry on ``config``'s split into ``folder`` (split.json, config.json and, when
    deliverable, model.skops with inference.json); returns (data, split, fitted model, unlabeled
    rows used, warnings)."""
    os.makedirs(folder, exist_ok=True)
    ds, split = prepare_data(config, dataset)
    split.save(os.path.join(folder, "split.json"))
    write_json_atomically(os.path.join(folder, "config.json"), config.to_dict())

    def pool() -> np.ndarray:
        extra = ds.x_unlabeled if ds.x_unlabeled is not None else ds.x_train[:0]
        rows = np.setdiff1d(split.unlabeled, split.labeled)  # the pool less the labeled examples, in order
        inside = rows[rows < len(ds.x_train)]
        return np.concatenate([ds.x_train[inside], extra[rows[rows >= len(ds.x_train)] - len(ds.x_train)]])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, used = fit_baseline(entry.method, config.seed, ds.x_train[split.labeled], split.labels(ds.y_train),
                                   pool, ds.num_classes, entry.options)
    if entry.deliverable:
        save_model(folder, model)
        spec = {**input_spec(ds), "estimator": entry.method, "estimator_options": dict(entry.options)}
        write_json_atomically(os.path.join(folder, INFERENCE), spec)
    notes = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught})
    return ds, split, model, used, notes


def baseline_cell(cell: Cell, config: TrainConfig, dataset: Optional[ArrayDataset], with_test: bool) -> dict:
    folder = config.out
    prepare_folder(folder)
    started = time.perf_counter()
    ds, split, model, used, notes = fit_classical(cell.entry, config, dataset, folder)
    try:
        x_val, val_true = ds.x_train[split.validation], ds.y_train[split.validation]
        val_proba = probabilities(model, as_features(x_val), ds.num_classes)
        test = (ds.x_test, ds.y_test, probabilities(model, as_features(ds.x_test), ds.num_classes)) if with_test else None
    finally:
        if hasattr(model, "close"):  # AutoGluon's models on disk
            model.close()
    return _finish(cell, folder, split.validation, x_val, val_true, val_proba, test, time.perf_counter() - started,
                   num_labeled=len(split.labeled), num_unlabeled=used, warnings=notes)


# --- workers ----------------------------------------------------------------------------
_DATASETS: Dict[str, ArrayDataset] = {}
_GIVEN: Optional[ArrayDataset] = None


def _dataset_key(config: TrainConfig) -> str:
    return json.dumps([config.dataset, config.data_path, config.seed, config.dataset_options], sort_keys=True)


def remember_dataset(config: TrainConfig, dataset: ArrayDataset) -> None:
    """Keep a dataset this process loaded already for the cells of ``config``'s seed."""
    _DATASETS.clear()
    _DATASETS[_dataset_key(config)] = dataset


def _dataset_for(config: TrainConfig) -> ArrayDataset:
    """The loaded dataset of ``config`` (kept per process: every cell of a comparison reads the
    same files, seeds aside), or the in-memory dataset the comparison was given."""
    if _GIVEN is not None:
        return _GIVEN
    key = _dataset_key(config)
    if key not in _DATASETS:
        remember_dataset(config, load_configured_dataset(config))  # one at a time: seeds would pile up
    return _DATASETS[key]


def run_cell(cell: Cell, config: TrainConfig, with_test: bool, dataset: Optional[ArrayDataset] = None) -> dict:
    """The cell's record: trained (or fitted) now, or as a finished one left it. ``dataset``: the
    in-memory data, else the config's (loaded once per process)."""
    done = read_cell(config.out)
    if done is not None:
        return done
    dataset = dataset if dataset is not None else _dataset_for(config)
    if cell.entry.baseline:
        return baseline_cell(cell, config, dataset, with_test)
    return train_cell(cell, config, dataset, with_test)


def _init_worker(threads: int, given: Optional[ArrayDataset], parent: int) -> None:
    global _GIVEN
    import torch

    _die_with_parent(parent)
    torch.set_num_threads(threads)
    _GIVEN = given


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def run_cells(cells: List[Cell], configs: List[TrainConfig], with_test: bool, jobs: int, threads: int,
              dataset: Optional[ArrayDataset]) -> Iterator[dict]:
    """Yields each cell's record as it finishes: in this process for one job, else from ``jobs``
    worker processes of ``threads`` torch threads each."""
    global _GIVEN
    if jobs <= 1:
        import torch

        previous_given, previous_threads = _GIVEN, torch.get_num_threads()
        _GIVEN = dataset
        torch.set_num_threads(threads)
        try:
            for cell, config in zip(cells, configs):
                yield run_cell(cell, config, with_test)
        finally:
            _GIVEN = previous_given
            torch.set_num_threads(previous_threads)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: a forked copy of a process whose torch thread pools already run can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                             initargs=(threads, dataset, os.getpid())) as pool:
        pending = {pool.submit(run_cell, cell, config, with_test) for cell, config in zip(cells, configs)}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        raise MentorError(
                            "a worker process of the comparison died (killed, out of memory, or it failed to start: "
                            "a script that calls compare(jobs > 1) must guard its top level with "
                            "`if __name__ == \"__main__\":`, as Python's multiprocessing requires); finished cells "
                            "are kept: resume, or use one job") from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
