"""Paired differences with intervals, verdicts and the choice, from the cells' predictions.

The unit of every interval is a distinct example (its content key), not a cell or a
prediction: an example held out in several seeds or repeats is one unit, its outcome the mean
over its appearances. Repeats thus average away training noise but cannot shrink an interval
below what the number of distinct held-out labels allows, which is the honest limit of a
validation built from the labels a user has. Two entries are paired on the same examples of
the same cells, so the interval of their difference is much narrower than the two accuracies'
intervals would suggest. Intervals are percentile bootstraps over units (seeded).
"""
from __future__ import annotations

import math
import statistics
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

def unit_means(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over the rows of each distinct key."""
    _, inverse = np.unique(keys, return_inverse=True)
    return np.bincount(inverse, weights=values.astype(np.float64)) / np.bincount(inverse)


def bootstrap_interval(values: np.ndarray, reps: int, seed: int, level: float = 0.95) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one per unit)."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    chunk = max(1, 4_000_000 // n)  # resamples drawn a block at a time: bounded memory
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        means[start:start + k] = values[rng.integers(0, n, (k, n))].mean(axis=1)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def smallest_detectable(units: int, level: float = 0.95) -> int:
    """The fewest examples k by which one entry must beat another, every other example alike,
    for the bootstrap interval of the difference to exclude zero: a resample misses all k with
    probability (1 - k/n)^n, which must fall below the interval's lower tail. This is the
    resolution of the validation at its best; disagreements both ways widen it."""
    tail = (1.0 - level) / 2
    return next(k for k in range(1, units + 1) if (1.0 - k / units) ** units < tail)


def verdict(lo: float, hi: float) -> Optional[str]:
    if math.isnan(lo):
        return None
    return "helps" if lo > 0 else "hurts" if hi < 0 else "no measurable difference"


def _outcomes(predictions: List[Dict[str, np.ndarray]], split: str) -> Tuple[np.ndarray, np.ndarray]:
    """(keys, correct) of ``split`` ("val" or "test") over cells, concatenated in cell order."""
    keys = [p[f"{split}_key"] for p in predictions]
    correct = [(p[f"{split}_pred"] == p[f"{split}_true"]).astype(np.float64) for p in predictions]
    if not keys:
        return np.zeros(0, np.uint64), np.zeros(0)
    return np.concatenate(keys), np.concatenate(correct)


def split_figures(mine: List[dict], reference: List[dict], split: str, reps: int, seed: int) -> dict:
    """Accuracy of an entry on ``split`` with its interval, and its paired difference to the
    reference entry over the cells both have, with its interval and verdict."""
    keys, correct = _outcomes(mine, split)
    if len(keys) == 0:
        return {}
    units = unit_means(keys, correct)
    lo, hi = bootstrap_interval(units, reps, seed)
    figures = {"accuracy": float(units.mean()), "interval": [lo, hi], "units": int(len(units)),
               "predictions": int(len(keys))}
    if reference is not None:
        ref_keys, ref_correct = _outcomes(reference, split)
        if not np.array_equal(ref_keys, keys):
            raise ValueError("paired cells hold different examples")  # the same splits by construction
        diff = unit_means(keys, correct - ref_correct)
        d_lo, d_hi = bootstrap_interval(diff, reps, seed + 1)
        figures.update(difference=float(diff.mean()), difference_interval=[d_lo, d_hi],
                       verdict=verdict(d_lo, d_hi), discordant=float(np.mean(correct != ref_correct)))
    return figures


def summarise(entries: Sequence[Tuple[str, bool, bool]], cells: Dict[str, Dict[tuple, dict]],
              load: Callable[[dict], Dict[str, np.ndarray]], reference: str, reps: int, seed: int,
              rule: str = "validation", kinds: Optional[Dict[str, str]] = None) -> dict:
    """One setting's table. ``entries``: (label, is a baseline, uses unlabeled data) in order;
    ``cells[label][(seed, fold)]`` = the finished cell records of an entry; ``load(record)``
    its predictions. Entries are paired with ``reference`` on the (seed, fold) cells both
    finished. ``kinds[label]``: "reference" for a row that is never chosen (AutoGluon),
    "ensemble" for the ensemble; ``rule`` chooses (see CHOICE_RULES)."""
    rows = []
    memo: Dict[str, Dict[str, np.ndarray]] = {}
    kinds = kinds or {}

    def predictions(record: dict) -> Dict[str, np.ndarray]:  # the reference's are paired with every entry: read once
        if record["cell"] not in memo:
            memo[record["cell"]] = load(record)
        return memo[record["cell"]]

    ref_cells = cells.get(reference, {})
    chance = None
    if ref_cells:  # always predicting the largest class of the held-out labels scores this
        truth = np.concatenate([predictions(r)["val_true"] for r in ref_cells.values()])
        chance = float(np.bincount(truth).max() / len(truth)) if len(truth) else None
    for label, baseline, semi_supervised in entries:
        mine = cells.get(label, {})
        common = sorted(set(mine) & set(ref_cells))
        row = {"label": label, "baseline": baseline, "semi_supervised": semi_supervised, "cells": len(mine),
               "paired_cells": len(common)}
        if label in kinds:
            row["kind"] = kinds[label]
        if mine:
            records = [mine[k] for k in sorted(mine)]
            row["seconds_per_cell"] = statistics.mean(r["seconds"] for r in records)
            row["fold_val_accuracies"] = [r["val_accuracy"] for r in records if r["val_accuracy"] is not None]
            tests = [r["test_accuracy"] for r in records if r["test_accuracy"] is not None]
            if tests:
                row["test_accuracy"] = statistics.mean(tests)
                row["test_std"] = statistics.stdev(tests) if len(tests) > 1 else 0.0
                row["cell_test_accuracies"] = tests
        if common:
            mine_p = [predictions(mine[k]) for k in common]
            ref_p = None if label == reference else [predictions(ref_cells[k]) for k in common]
            for split in ("val", "test"):
                if all(f"{split}_key" in p and len(p[f"{split}_key"]) for p in mine_p):
                    row[split] = split_figures(mine_p, ref_p, split, reps, seed)
        rows.append(row)
    at_chance = [r["label"] for r in rows if chance is not None and "val" in r and r["val"]["accuracy"] <= chance]
    return {"rows": rows, "chance": chance, "at_chance": at_chance, **choose(rows, reference, rule)}


# How the choice is made on validation (BENCHMARKS.md "Which rule chooses": the mean regret of
# each on every benchmark problem with a test split):
# - validation: the single entry with the best validation accuracy;
# - significant: the best on validation among the entries whose interval over supervised
#   training excludes zero, else the best of supervised training and the classical baselines;
# - ensemble: the ensemble (when the comparison has one);
# - validation+ensemble: the best on validation, the ensemble's (optimistic) figure included; a
#   tie or a lead under the resolution goes to the ensemble.
CHOICE_RULES = ("validation", "significant", "ensemble", "validation+ensemble")


def _pick(rows: List[dict], rule: str, reference: str, resolution: float = 0.0) -> Optional[dict]:
    """The row ``rule`` (one of CHOICE_RULES) chooses among ``rows`` (each with a validation
    figure); ``resolution``: the smallest difference in accuracy the held-out labels can show."""
    singles = [r for r in rows if r.get("kind") not in ("reference", "ensemble")]
    ensemble = next((r for r in rows if r.get("kind") == "ensemble"), None)
    best = lambda candidates: max(candidates, key=lambda r: r["val"]["accuracy"]) if candidates else None  # noqa: E731
    if rule == "validation":
        return best(singles)
    if rule == "validation+ensemble":
        # A tie, or a lead under the resolution, goes to the ensemble: only a single entry measurably
        # ahead of it is taken instead (on wine-15 a tie at 67.5 took extra trees: 5.0 points of regret).
        single = best(singles)
        if ensemble is None or (single is not None and
                                single["val"]["accuracy"] - ensemble["val"]["accuracy"] >= max(resolution, 1e-12)):
            return single
        return ensemble
    if rule == "ensemble":
        return ensemble or best(singles)
    # significant
    measured = [r for r in singles if r["label"] != reference and r["val"].get("difference_interval")
                and r["val"]["difference_interval"][0] > 0]
    return best(measured) or best([r for r in singles if r["label"] == reference or r["baseline"]])


def choose(rows: List[dict], reference: str, rule: str = "validation") -> dict:
    """The choice by ``rule`` (ties: the earlier row, the reference first), what every rule would
    choose, the best network entry, the resolution and, with a test split, each choice's regret."""
    scored = [r for r in rows if "val" in r]
    if not scored:
        return {"chosen": None}
    if rule not in CHOICE_RULES:
        raise ValueError(f"unknown choice rule {rule!r}; one of {', '.join(CHOICE_RULES)}")
    units = max(r["val"]["units"] for r in scored)
    floor = smallest_detectable(units)
    picks = {name: _pick(scored, name, reference, floor / units) for name in CHOICE_RULES}
    chosen = picks[rule]
    networks = [r for r in scored if not r["baseline"] and r.get("kind") is None]
    best_network = max(networks, key=lambda r: r["val"]["accuracy"]) if networks else None
    halves = [(r["val"]["difference_interval"][1] - r["val"]["difference_interval"][0]) / 2
              for r in scored if r["label"] != reference and "difference_interval" in r["val"]
              and r["val"]["discordant"] > 0]
    out = {"chosen": chosen["label"], "chosen_is_baseline": chosen["baseline"], "chosen_kind": chosen.get("kind"),
           "rule": rule, "best_network": best_network["label"] if best_network else None,
           "resolution": {"units": units, "floor_examples": floor, "floor": floor / units,
                          "half_width": statistics.median(halves) if halves else None}}
    rules = {name: row["label"] for name, row in picks.items()}
    tested = [r for r in rows if "test_accuracy" in r and r.get("kind") != "reference"]
    if tested and "test_accuracy" in chosen:
        best = max(tested, key=lambda r: r["test_accuracy"])
        by_label = {r["label"]: r for r in tested}
        out["best_on_test"] = best["label"]
        out["regret"] = best["test_accuracy"] - chosen["test_accuracy"]
        out["rule_regrets"] = {name: best["test_accuracy"] - by_label[label]["test_accuracy"]
                               for name, label in rules.items() if label in by_label}
    out["rule_choices"] = rules
    return out
