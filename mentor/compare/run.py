"""`mentor compare`: does unlabeled data help on this data, which method, and how sure can one be?

The protocol of Oliver et al. 2018 ("Realistic Evaluation of Deep Semi-Supervised Learning
Algorithms"): one model and one budget for every method, supervised training always, the
classical baselines a practitioner would fit anyway, and a validation built from the labels the
user has. The labeled examples are split into ``folds`` stratified folds per seed; every entry
trains on each fold's other labels with all the unlabeled data and is scored on the held-out
labels. The held-out predictions are pooled over folds and seeds and paired across entries (the
same examples), which gives each entry's difference to supervised training with a 95% interval
and a verdict, and the choice: the entry with the best validation accuracy. The test split, where
the dataset has one, is reported in its own columns and never informs the choice; the regret says
what the choice cost on it.

Every cell (entry x seed x fold x study setting) is a run folder under OUT/cells, so a killed
comparison resumes (``resume=True``) with its finished cells kept.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from ..data import ArrayDataset
from ..files import write_json_atomically
from ..data.fingerprint import INPUT_OPTIONS, check_unchanged, input_fingerprint
from ..errors import ConfigError
from ..options import resolve_device
from ..train import RESUME_FREE, TrainConfig, Trainer, load_configured_dataset, prepare_data
from .baselines import check_installed, seconds_per_cell
from .deliver import deliver_bag, deliver_classical, deliver_ensemble, deliver_refit_ensemble
from .cells import (available_cores, fit_classical, prepare_folder, read_cell, read_predictions, remember_dataset,
                    run_cell, run_cells)
from .output import pct, write_report
from .plan import FEATURE_NOISE, Cell, Entry, Setting, make_cells, resolve_entries, study_settings
from . import ensemble
from .stats import CHOICE_RULES, summarise

SETTINGS_FILE = "compare-settings.json"
# The choice rule (mentor.compare.stats.CHOICE_RULES): the one with the lowest mean regret on the
# test splits of 18 comparisons of BENCHMARKS.md ("Which rule chooses", every entry judged as its
# fold models averaged: validation+ensemble 1.54 points, ensemble 1.68, validation 1.97,
# significant 2.21; as compare computes regret: 1.32, 1.15, 2.34, 2.79).
CHOICE_RULE = "validation+ensemble"
RESULT_FILE = "compare.json"
# What --fit-best delivers: "refit", the choice fitted on every label (an ensemble: each member
# refitted, with its validated weights), or "bag", its fold models as validated, averaged.
DELIVERIES = ("refit", "bag")
DELIVER = {"ensemble": "bag", "single": "refit"}
BOOTSTRAP = 4000
# Seconds a worker process takes to start (spawn, import torch and mentor): 3.4 s measured on 2 cores
WORKER_START = 3.5


def compare(config: TrainConfig, methods: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
            folds: int = 5, out: Optional[str] = None, jobs: int = 1, resume=False,
            dataset: Optional[ArrayDataset] = None, baselines: Optional[Sequence[str]] = None,
            unlabeled_fractions: Optional[Sequence[float]] = None, class_mismatch: Optional[Sequence[float]] = None,
            labeled_classes: Optional[Sequence[int]] = None, fit_best: bool = False, test: bool = True,
            progress: bool = True, log: Optional[Callable[[str], None]] = None, rule: Optional[str] = None,
            deliver: Optional[str] = None) -> dict:
    """Runs (or resumes) a comparison and returns what compare.json holds. ``config`` gives
    every training setting (its method and seed are the cells'); ``dataset`` in-memory arrays
    instead of config.dataset; ``folds`` 0 trains on every label and scores the test split only
    (a benchmark, no choice); ``out`` None works in a temporary folder; ``resume`` True continues
    OUT's comparison (refused where there is none), "auto" continues it if there is one. ``log`` receives the
    plan and notes (default: stderr when ``progress``). ``rule``: how the choice is made
    (mentor.compare.stats.CHOICE_RULES; default CHOICE_RULE, the lowest regret measured)."""
    if log is None:
        log = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)
    if out is None:
        if fit_best:
            raise ConfigError("--fit-best needs --out: the chosen model is written to OUT/best")
        with tempfile.TemporaryDirectory(prefix="mentor-compare-") as folder:
            return compare(config, methods=methods, seeds=seeds, folds=folds, out=folder, jobs=jobs,
                           dataset=dataset, baselines=baselines, unlabeled_fractions=unlabeled_fractions,
                           class_mismatch=class_mismatch, labeled_classes=labeled_classes, test=test,
                           progress=progress, log=log, rule=rule)
    if folds == 1 or folds < 0:
        raise ConfigError(f"--folds {folds}: give 2 or more validation folds, or 0 to train on every label and score "
                          "the test split only")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    rule = rule or CHOICE_RULE
    if rule not in CHOICE_RULES:
        raise ConfigError(f"--choice-rule {rule!r}: choose one of {', '.join(CHOICE_RULES)}")
    if deliver is not None and deliver not in DELIVERIES:
        raise ConfigError(f"--deliver {deliver!r}: choose one of {', '.join(DELIVERIES)}")
    seeds = list(seeds) if seeds else [config.seed]
    resolve_device(config.device)  # a device this machine lacks is refused before OUT holds anything
    if fit_best and (unlabeled_fractions or class_mismatch):
        raise ConfigError("--fit-best trains the choice on all the data; run it without --unlabeled-fraction and "
                          "--class-mismatch")
    if fit_best and not folds:
        raise ConfigError("--fit-best chooses on validation folds; it cannot go with --folds 0")

    loaded = dataset
    if loaded is None:
        loaded = load_configured_dataset(config, seed=seeds[0])
    if loaded.streamed:
        raise ConfigError("mentor compare scores every method and baseline on examples held in memory; "
                          f"--dataset {config.dataset} streams its pool: compare on a subset in memory "
                          "(e.g. --dataset image_folder) and train the choice from shards with mentor train")
    if dataset is None:
        remember_dataset(replace(config, seed=seeds[0]), loaded)  # the cells of seeds[0] run here with one job
    features = not loaded.is_image
    held_test = _held_test_note(config, loaded)
    if held_test:
        log(held_test)
    if features and config.strong_noise is None and loaded.cached_views is None:  # embeddings bring their views
        config = replace(config, strong_noise=FEATURE_NOISE)
    entries = resolve_entries(methods, baselines, features)
    for entry in entries:
        if entry.baseline:
            check_installed(entry.method)
    settings = study_settings(unlabeled_fractions, class_mismatch, labeled_classes, loaded.num_classes)
    cells = make_cells(settings, entries, seeds, folds)
    configs = [cell.config(config, cell.folder(out), features) for cell in cells]
    for setting in settings:  # bad input (too few labels for the folds, mismatch on a pool of unknown classes) now
        first = next(c for cell, c in zip(cells, configs) if cell.setting == setting)  # of seeds[0], as ``loaded``
        prepare_data(first.validate(), loaded)
    _claim_folder(out, config, folds, test, labeled_classes, resume, fit_best)

    todo = [(cell, c) for cell, c in zip(cells, configs) if read_cell(c.out) is None]
    threads = max(1, available_cores() // jobs)
    estimate = _estimate(todo, dataset if dataset is not None else loaded, jobs, threads, seeds[0])
    log(_plan_line(cells, todo, entries, seeds, folds, settings, jobs, threads, estimate))
    started = time.perf_counter()  # the estimate says how long from here
    _run(todo, test, jobs, threads, dataset, progress)
    result, ensembles = _summarise(out, config, cells, entries, settings, seeds, folds, test, jobs,
                                   time.perf_counter() - started, rule)
    result["settings"]["held_test"] = held_test
    result["estimated_seconds"] = None if estimate is None else round(estimate, 1)
    if fit_best:
        result["best"] = _fit_best(out, config, result, entries, seeds[0], features, dataset, log, ensembles["all"],
                                   deliver)
    result["report"] = write_report(result, os.path.join(out, "report.html"))
    write_json_atomically(os.path.join(out, RESULT_FILE), result)
    return result


def _held_test_note(config: TrainConfig, loaded) -> Optional[str]:
    """A table without --test-path, or an image folder without test/, keeps a seeded share of its
    own labeled examples as its test split: say how many, and how to train on them all."""
    fraction = (loaded.source_rows or {}).get("test_fraction")
    if not fraction:
        return None
    n_test, n_train = len(loaded.y_test), len(loaded.y_train)  # every labeled example trains, but the test ones
    own = ("give labeled test rows as their own file (--test-path FILE)" if config.dataset != "image_folder" else
           "give labeled test images as their own folder (root/train/<class>/ beside root/test/<class>/)")
    return (f"test split: {n_test} of the {n_test + n_train} labeled examples are held out (a seeded stratified "
            f"{100 * float(fraction):g}%, never used for a choice); the folds and --fit-best use the other {n_train}. "
            f"To train on every label, {own}, or keep fewer back (--data-hp test_fraction=0.1)")


def _resolved_paths(config: dict) -> dict:
    """The config with its input paths resolved: the same file named relatively or absolutely is
    the same setting."""
    options = dict(config.get("dataset_options") or {})
    for key in INPUT_OPTIONS:
        if isinstance(options.get(key), str):
            options[key] = os.path.realpath(options[key])
    path = config.get("data_path")
    return {**config, "data_path": os.path.realpath(path) if isinstance(path, str) else path,
            "dataset_options": options}


def _fingerprint(config: TrainConfig, folds: int, test: bool, labeled_classes) -> dict:
    free = set(RESUME_FREE) | {"method", "method_options", "seed"}  # the cells' own
    return {"config": _resolved_paths({k: v for k, v in config.to_dict().items() if k not in free}),
            "folds": folds, "test": test,
            "labeled_classes": list(labeled_classes) if labeled_classes else None,
            "inputs": input_fingerprint(config.data_path, config.dataset_options)}


def _claim_folder(out: str, config: TrainConfig, folds: int, test: bool, labeled_classes, resume: bool,
                  fit_best: bool) -> None:
    """Writes OUT/compare-settings.json, or checks a resumed comparison against it. Methods,
    seeds and study points may change on resume (finished cells are found by name); the
    training settings, folds and labeled classes may not. --fit-best continues a comparison of
    the same settings without --resume: adding it to a finished comparison just fits."""
    path = os.path.join(out, SETTINGS_FILE)
    now = json.loads(json.dumps(_fingerprint(config, folds, test, labeled_classes)))
    if os.path.exists(path):
        if resume is False and not fit_best:
            raise ConfigError(f"{out} already holds a comparison; pass --resume (resume=True in Python) to continue it (methods, seeds and "
                              "study points may be added) or choose another --out")
        with open(path) as f:
            saved = json.load(f)
        saved["config"] = _resolved_paths(saved["config"])
        diff = [f"{k}: {saved['config'].get(k)!r} then, {now['config'].get(k)!r} now"
                for k in sorted(set(saved["config"]) | set(now["config"]))
                if saved["config"].get(k) != now["config"].get(k)]
        diff += [f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in ("folds", "test", "labeled_classes")
                 if saved.get(k) != now.get(k)]
        if diff:
            raise ConfigError(f"{out} holds a comparison made with other settings ({'; '.join(diff)}); resume it "
                              "with the same training flags or choose another --out")
        if "inputs" in saved:  # comparisons from before inputs were recorded are taken as they are
            check_unchanged(saved["inputs"], now["inputs"], f"the comparison in {out}",
                            "Its finished cells were trained on the old data: restore it, or compare afresh into "
                            "another --out")
        return
    if resume is True:
        raise ConfigError(f"nothing to resume: {out} holds no comparison ({SETTINGS_FILE}); leave out --resume to "
                          "start one")
    write_json_atomically(path, now)


def _estimate(todo: List[tuple], dataset: ArrayDataset, jobs: int, threads: int, first_seed: int) -> Optional[float]:
    """Seconds the cells left will take, measured at the threads one job gets: each network entry's
    first cell built, a few of its steps and an evaluation timed (its cells' time: building + steps
    + evaluations + final predictions), each scikit-learn baseline fitted once on its first cell;
    AutoGluon's cells count their time limit. The sum over the jobs."""
    import torch

    per_entry: Dict[str, float] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for cell, config in todo:
            if cell.entry.label in per_entry:
                continue
            given = dataset if config.seed == first_seed else None
            begin = time.perf_counter()
            if cell.entry.baseline:
                if seconds_per_cell(cell.entry.method, cell.entry.options):  # AutoGluon: its time limit
                    per_entry[cell.entry.label] = seconds_per_cell(cell.entry.method, cell.entry.options)
                    continue
                with tempfile.TemporaryDirectory(prefix="mentor-estimate-") as folder:
                    fit_classical(cell.entry, replace(config, out=folder), given, folder)
                per_entry[cell.entry.label] = time.perf_counter() - begin
                continue
            probe = Trainer(replace(config, out=None, progress=False), dataset=given)
            built = time.perf_counter() - begin
            for _ in range(2):
                probe.train_step()
            begin = time.perf_counter()
            for _ in range(6):
                probe.train_step()
            step = (time.perf_counter() - begin) / 6
            begin = time.perf_counter()
            probe.evaluate()
            evaluations = (config.steps // config.eval_every if config.eval_every else 0) + 1  # and the final one
            per_entry[cell.entry.label] = built + step * config.steps + (time.perf_counter() - begin) * evaluations
    finally:
        torch.set_num_threads(previous)
    if not todo:
        return None
    durations = [per_entry.get(cell.entry.label, 0.0) for cell, _ in todo]
    if jobs == 1:
        return sum(durations)
    # Worker processes start by importing torch and mentor, and the last cells leave a worker idle
    # while another finishes: on average half the longest cell.
    return max(sum(durations) / jobs, max(durations)) + WORKER_START + max(durations) / 2


def _plan_line(cells, todo, entries, seeds, folds, settings, jobs, threads, estimate) -> str:
    networks = sum(not cell.entry.baseline for cell, _ in todo)
    shape = f"{len(entries)} entries x {len(seeds)} seed(s) x {max(folds, 1)} fold(s)" + \
        (f" x {len(settings)} settings" if len(settings) > 1 else "")
    done = len(cells) - len(todo)
    when = f"about {_duration(estimate)}" if estimate is not None else "nothing left to run"
    return (f"mentor compare: {len(cells)} cells ({shape}){f', {done} already finished' if done else ''}; "
            f"{networks} networks to train and {len(todo) - networks} classical fits, {when} with {jobs} job(s) of "
            f"{threads} thread(s)")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def _run(todo, test, jobs, threads, dataset, progress) -> None:
    from tqdm.auto import tqdm

    if not todo:
        return
    cells, configs = zip(*todo)
    bar = tqdm(total=len(todo), desc="cells", disable=not progress, unit="cell")
    try:
        for record in run_cells(list(cells), list(configs), test, jobs, threads, dataset):
            bar.set_postfix_str(f"{record['cell']}: val {pct(record['val_accuracy'])}", refresh=False)
            bar.update(1)
    finally:
        bar.close()


def _by_entry(records: List[dict], setting: str) -> Dict[str, Dict[tuple, dict]]:
    """The finished cells of one setting: label -> {(seed, fold): record}."""
    by_entry: Dict[str, Dict[tuple, dict]] = {}
    for r in records:
        if r["setting"] == setting:
            by_entry.setdefault(r["label"], {})[(r["seed"], r["fold"])] = r
    return by_entry


def _summarise(out, config, cells: List[Cell], entries: List[Entry], settings, seeds, folds, test, jobs,
               seconds, rule: str) -> tuple:
    """(what compare.json holds, each setting's (cells by entry, ensemble.build's result or None)
    for --fit-best)."""
    baselines = [e.label for e in entries if e.baseline]
    records = [r for r in (read_cell(cell.folder(out)) for cell in cells) if r is not None]
    kinds = {e.label: "reference" for e in entries if not e.deliverable}
    tables, ensembles = {}, {}
    for setting in settings:
        read: Dict[str, dict] = {}  # the setting's predictions read once, the ensemble's made in memory

        def load(record: dict, read=read) -> dict:
            if record["cell"] not in read:
                read[record["cell"]] = read_predictions(os.path.join(out, "cells", record["cell"]))
            return read[record["cell"]]

        by_entry = _by_entry(records, setting.name)
        rows = [(e.label, e.baseline, e.semi_supervised) for e in entries]
        built = None
        if folds:  # the ensemble's weights are fitted on held-out predictions: none without folds
            built = ensemble.build([e.label for e in entries if e.deliverable], by_entry, load, seeds[0])
        ensembles[setting.name] = (dict(by_entry), built)
        if built is not None:
            ensemble_records, ensemble_predictions, description = built
            by_entry[ensemble.LABEL] = ensemble_records
            read.update(ensemble_predictions)
            semi = any(e.semi_supervised for e in entries if e.label in {m["entry"] for m in description["members"]})
            rows.append((ensemble.LABEL, False, semi))
        table = summarise(rows, by_entry, load, "supervised", BOOTSTRAP, seeds[0], rule=rule,
                          kinds={**kinds, ensemble.LABEL: "ensemble"})
        if built is not None:
            table["ensemble"] = description
        tables[setting.name] = {"overrides": setting.overrides, **table}
    return {"format": 1, "out": os.path.abspath(out),
            "settings": {"config": config.to_dict(), "entries": [e.label for e in entries], "baselines": baselines,
                         "seeds": list(seeds), "folds": folds, "test": test, "jobs": jobs,
                         "studies": [{"name": s.name, **s.overrides} for s in settings],
                         "bootstrap": BOOTSTRAP, "interval": "95% percentile bootstrap over distinct examples",
                         "rule": rule},
            "cells": records, "tables": tables, "seconds": round(seconds, 1)}, ensembles


def _fit_best(out, config, result, entries, seed, features, dataset, log, ensemble_of_all,
              deliver: Optional[str] = None) -> dict:
    """The choice on validation into OUT/best, ready for mentor predict / export / report: a network
    trained on every label (a run folder), a classical baseline fitted on every label (and the
    unlabeled rows where it uses them; model.skops), or the ensemble (its members' fold models as
    they are, no retraining; ensemble.json). ``ensemble_of_all``: _summarise's (cells by entry,
    ensemble) of the comparison's setting."""
    table = result["tables"]["all"]
    label = table.get("chosen")
    if label is None:
        raise ConfigError("--fit-best: no entry has a validation score to choose on")
    folder = os.path.join(out, "best")
    row = next(r for r in table["rows"] if r["label"] == label)
    validation = {k: row["val"].get(k) for k in ("accuracy", "interval", "difference", "difference_interval")}
    records, built = ensemble_of_all
    if table.get("chosen_kind") == ensemble.LABEL:
        how = deliver or DELIVER["ensemble"]
        members = table["ensemble"]["members"]
        names = ", ".join(m["entry"] for m in members)
        if how == "bag":
            log(f"--fit-best: the ensemble of {names} (their fold models, no retraining) into {folder}")
            info = deliver_ensemble(folder, out, table["ensemble"], records, built, seed, validation)
        else:
            log(f"--fit-best: the ensemble of {names}, each member refitted on every label, into {folder}")
            refits = {m["entry"]: _refit(out, next(e for e in entries if e.label == m["entry"]), config, seed,
                                         features, dataset) for m in members}
            info = deliver_refit_ensemble(folder, refits, table["ensemble"], validation)
        return {"label": label, "kind": "ensemble", "deliver": how, "folder": os.path.abspath(folder),
                "validation": validation, "members": members, "test_accuracy": info["test_accuracy"], "note": None}
    entry = next(e for e in entries if e.label == label)
    if (deliver or DELIVER["single"]) == "bag":
        log(f"--fit-best: {label}'s fold models (no retraining) into {folder}")
        info = deliver_bag(folder, out, label, records[label], seed, validation,
                           "classical" if entry.baseline else "network")
        return {"label": label, "kind": "ensemble", "deliver": "bag", "folder": os.path.abspath(folder),
                "validation": validation, "members": [{"entry": label, "weight": 1.0}],
                "test_accuracy": info["test_accuracy"], "note": None}
    cell = Cell(Setting("all"), entry, seed=seed, fold=0, folds=0)
    best_config = cell.config(config, folder, features)
    if entry.baseline:
        log(f"--fit-best: fitting {label} on every label into {folder}")
        info = deliver_classical(folder, entry, best_config, dataset, validation)
        return {"label": label, "kind": "classical", "deliver": "refit", "folder": os.path.abspath(folder),
                "validation": validation,
                "test_accuracy": info["test_accuracy"], "estimator": info["estimator"], "note": None}
    if _holds_other_model(folder, best_config):  # an earlier --fit-best chose something else
        shutil.rmtree(folder)
    resume = prepare_folder(folder)
    log(f"--fit-best: training {label} on every label into {folder}")
    summary = Trainer(best_config, dataset=dataset).fit(resume=resume)
    return {"label": label, "kind": "network", "deliver": "refit", "folder": os.path.abspath(folder),
            "validation": validation, "steps": summary["steps"], "test_accuracy": summary["final_test_accuracy"], "note": None}


def _refit(out: str, entry: Entry, config: TrainConfig, seed: int, features: bool, dataset) -> tuple:
    """(folder, predictions) of ``entry`` fitted on every label of seed ``seed``: a cell of no
    fold in OUT/refit/ENTRY, kept (and resumed) like any cell."""
    cell = Cell(Setting("all"), entry, seed=seed, fold=0, folds=0)
    folder = os.path.join(out, "refit", cell.name.split("/")[1])
    run_cell(cell, cell.config(config, folder, features), with_test=True, dataset=dataset)
    return folder, read_predictions(folder)


def _holds_other_model(folder: str, config: TrainConfig) -> bool:
    path = os.path.join(folder, "config.json")
    if not os.path.isdir(folder):
        return False
    if not os.path.exists(path):
        return True
    with open(path) as f:
        saved = json.load(f)
    now = json.loads(json.dumps(config.to_dict()))
    return any(saved.get(k) != now.get(k) for k in ("method", "method_options", "model", "model_options", "steps"))
