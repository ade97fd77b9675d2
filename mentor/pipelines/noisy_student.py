"""Noisy Student rounds and the pseudo-labelling tool behind `mentor noisy-student` and `mentor pseudo-label`.

Noisy Student (seeds/002, Algorithm 1; REFERENCES.md "Noisy Student"): train a teacher on the
labeled data; let it label the unlabeled pool; train a noised student on labeled and
pseudo-labeled data; make the student the teacher and go again.

Folder of a pipeline (``--out DIR``):
  DIR/pipeline.json     the settings (checked when the command is run again on DIR)
  DIR/round-0/          the teacher: a `supervised` run of the given settings (absent with --teacher RUN)
  DIR/round-K/labels/   the previous round's model's predictions on the pool (`mentor pseudo-label`)
  DIR/round-K/          the student: a `noisy_student` run on those labels
  DIR/rounds.json       per round: the teacher's and the student's accuracy, the selection's size
Every stage is resumable and the command is idempotent: run it again after a kill and it
continues where it stopped (a finished run is kept, an interrupted one resumes from its
checkpoint, a labelling from its first missing shard).
"""
from __future__ import annotations

import copy
import json
import os
from typing import Optional

import numpy as np

from ..files import write_json_atomically
from ..errors import ConfigError, DataError
from ..methods.noisy_student import pool_fingerprint
from ..models.mlp import wider_options
from ..pseudo_labels import label_pool, open_pool
from ..train import RESUME_FREE, TrainConfig, Trainer, load_run


def pseudo_label_run(run_dir: str, out: str, data: Optional[str] = None, batch_size: int = 1024,
                     shard_size: int = 65536, device: str = "auto", progress: bool = True,
                     check_inputs: bool = True) -> dict:
    """Label a pool with the model of a finished run (its evaluated model: the student for a
    teacher-student method), in eval mode on clean inputs. Without ``data`` the pool is the
    run's own unlabeled pool (what a `noisy_student` run on the same settings trains on);
    with ``data``, a .npy file of examples stored like the run's dataset."""
    return label_with(load_run(run_dir, device=device, check_inputs=check_inputs), out, data, batch_size, shard_size, progress)


def label_with(trainer: Trainer, out: str, data: Optional[str] = None, batch_size: int = 1024,
               shard_size: int = 65536, progress: bool = True) -> dict:
    """``pseudo_label_run`` for a run already in memory (the pipeline's previous round)."""
    model, transform = trainer.method.eval_model(), trainer.views.eval
    if data is None and trainer.split.streamed_pool is not None:  # shards: the whole pool, in its order
        pool = trainer.dataset.pool(np.asarray(trainer.split.streamed_pool["excluded"], dtype=np.int64))
        pool.name = pool.fingerprint()
    elif data is None:  # the run's own pool, read batch by batch from where it is held
        pool = trainer.pool
        pool.name = pool_fingerprint(trainer.split.unlabeled)
    else:
        expected = tuple(trainer.dataset.input_shape)
        pool = open_pool(data, size=expected[1:] if len(expected) == 3 else None)
        got = pool.read(0, 1).shape[1:]
        if tuple(expected) != tuple(got):
            raise DataError(f"examples of {data} have shape {tuple(got)}, the teacher's {trainer.dataset.name} "
                            f"examples {tuple(expected)}")
        if not pool.streamed:
            pool.name = os.path.abspath(data)
    teacher = f"{os.path.abspath(trainer.config.out)}@step{trainer.step}"
    return label_pool(model, transform, pool, out, trainer.dataset.num_classes, trainer.device, batch_size,
                      shard_size, teacher=teacher, autocast=trainer.method.autocast, progress=progress,
                      ctx=trainer.dist)


def _run(config: TrainConfig) -> Trainer:
    """Train (or finish, or just reload) the run in config.out."""
    out = config.out
    if os.path.exists(os.path.join(out, "summary.json")) and os.path.exists(os.path.join(out, "checkpoint.pt")):
        return load_run(out, device=config.device)  # finished: its settings were checked against pipeline.json
    trainer = Trainer(config)
    trainer.fit(resume=os.path.exists(os.path.join(out, "checkpoint.pt")))
    return trainer


def _accuracies(trainer: Trainer) -> dict:
    metrics = trainer.evaluate()
    return {k: v for k, v in metrics.items() if k in ("test_accuracy", "val_accuracy")}


def _check_settings(out: str, settings: dict) -> None:
    path = os.path.join(out, "pipeline.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        free = set(RESUME_FREE) | {"rounds"}
        keys = (set(saved) | set(settings)) - {"config"}
        differs = sorted(k for k in keys if k not in free and saved.get(k) != settings.get(k))
        saved_config = {k: v for k, v in saved.get("config", {}).items() if k not in RESUME_FREE}
        now_config = {k: v for k, v in settings["config"].items() if k not in RESUME_FREE}
        differs += sorted(k for k in set(saved_config) | set(now_config) if saved_config.get(k) != now_config.get(k))
        if differs:
            raise ConfigError(f"{out} holds a Noisy Student pipeline with other settings ({', '.join(differs)}); "
                              "choose another --out")
    write_json_atomically(path, settings)


DEFAULT_STUDENT_WIDTH = 4.0
# The paper's input noise is RandAugment alone; Cutout is FixMatch's addition to the strong
# view. On the Fashion-MNIST validation split Cutout cost the student 1.2 points (BENCHMARKS.md).
DEFAULT_STUDENT_CUTOUT = 0.0


def student_options(config: TrainConfig, width: float = DEFAULT_STUDENT_WIDTH,
                    model_options: Optional[dict] = None) -> dict:
    """The students' model options: the teacher's model ``width`` times wider (the paper's
    students are equal or larger; x4 turns the mlp's 64-64 into 256-256 and wrn28_2 into
    WRN-28-8), then ``model_options`` on top. ``model_options`` naming another architecture
    (``model=efficientnet_lite0``, a pretrained student) are the student's options alone."""
    if model_options and "model" in model_options:
        return dict(model_options)
    return {**wider_options(config.model, config.model_options, width), **(model_options or {})}


def run_noisy_student(config: TrainConfig, rounds: int, out: str, teacher: Optional[str] = None,
                      student_model_options: Optional[dict] = None, student_width: float = DEFAULT_STUDENT_WIDTH,
                      student_cutout: Optional[float] = DEFAULT_STUDENT_CUTOUT, progress: bool = True) -> dict:
    """``rounds`` rounds of Noisy Student; ``config`` holds the settings of every run (its method
    options go to the students; the round-0 teacher is a `supervised` run of the same settings).
    Students are ``student_width`` times wider than the teacher's model, then
    ``student_model_options`` apply; their strong view has Cutout ``student_cutout`` (None:
    the config's). Returns the content of rounds.json."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if config.method not in ("supervised", "noisy_student"):
        raise ConfigError("noisy-student chooses the methods itself (a supervised teacher, noisy_student "
                          f"students); drop --method {config.method}")
    student_model = student_options(config, student_width, student_model_options)
    cutout = config.cutout if student_cutout is None else student_cutout
    settings = {"rounds": rounds, "teacher": None if teacher is None else os.path.abspath(teacher),
                "student_model_options": student_model, "student_cutout": cutout, "config": config.to_dict()}
    _check_settings(out, settings)
    table = {"rounds": []}
    if teacher is None:
        teacher_config = copy.deepcopy(config)
        teacher_config.method, teacher_config.method_options = "supervised", {}
        teacher_config.out = os.path.join(out, "round-0")
        teacher = teacher_config.out
        current = _run(teacher_config)
    else:
        current = load_run(teacher, device=config.device)
    scores = _accuracies(current)
    table["rounds"].append({"round": 0, "run": os.path.relpath(teacher, out) if teacher.startswith(out) else teacher,
                            **{f"model_{k}": v for k, v in scores.items()}})
    write_json_atomically(os.path.join(out, "rounds.json"), table)
    for k in range(1, rounds + 1):
        run_dir = os.path.join(out, f"round-{k}")
        labels = os.path.join(run_dir, "labels")
        label_with(current, labels, progress=progress)  # the previous round's model, already loaded
        student_config = copy.deepcopy(config)
        student_config.method = "noisy_student"
        student_config.method_options = {**config.method_options, "pseudo_labels": labels}
        student_config.model_options = student_model
        student_config.cutout = cutout
        student_config.out = run_dir
        teacher_scores = scores
        current = _run(student_config)
        scores = _accuracies(current)
        selected = current.method.selected
        if current.method.streamed_selection:  # streamed: the size is known, the positions stay on disk
            selected_count, distinct = current.method.selection_size, None
        else:
            selected_count = None if selected is None else int(len(selected))
            distinct = None if selected is None else int(len(np.unique(selected.cpu().numpy())))
        table["rounds"].append({
            "round": k, "run": f"round-{k}",
            **{f"teacher_{name}": v for name, v in teacher_scores.items()},
            **{f"student_{name}": v for name, v in scores.items()},
            "pseudo_labeled": selected_count,
            "distinct_pseudo_labeled": distinct,
        })
        write_json_atomically(os.path.join(out, "rounds.json"), table)
    return table
