"""The ``ensemble`` entry: what a comparison's cells already hold, combined at no training cost.

Each entry's fold models have predicted their held-out labels (out-of-fold probabilities,
pooled over folds and seeds) and the test split. Greedy ensemble selection (Caruana et al. 2004,
"Ensemble Selection from Libraries of Models", as AutoGluon's WeightedEnsemble does) adds, round
by round and with replacement, the entry whose out-of-fold probabilities most raise the
accuracy of the running average (ties: the lower log loss, then the earlier entry); the round
with the best accuracy gives the weights (fewest rounds among equals). An entry enters the
ensemble as its fold models averaged, so a selection of one entry is that entry's fold models
averaged (bagging).

Scoring uses the same held-out labels as every entry: in cell (seed, fold) the ensemble's
held-out prediction is the weighted sum of its members' held-out probabilities; its test
prediction, the weighted sum of each member's test probabilities averaged over that seed's
folds: exactly the model ``--fit-best`` delivers (every fold model of every member, weighted),
seed by seed. The validation figure is optimistic, since the weights were fitted on the same
held-out predictions; ``nested_optimism`` measures by how much (weights fitted on one half of
the held-out examples, scored on the other, and the other way round).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

LABEL = "ensemble"
ROUNDS = 25  # selections (with replacement); a weight is then a multiple of 1/25


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))))


def greedy_selection(probas: Sequence[np.ndarray], y: np.ndarray, rounds: int = ROUNDS) -> np.ndarray:
    """Caruana's ensemble selection: weights (summing to 1) over ``probas`` (each (n, C)) that
    maximise the accuracy of their weighted average on labels ``y``."""
    counts = np.zeros(len(probas), dtype=np.int64)
    total = np.zeros_like(probas[0], dtype=np.float64)
    best, best_counts = (-1.0, np.inf), counts.copy()
    for r in range(1, rounds + 1):
        scores = []
        for p in probas:
            mean = (total + p) / r
            scores.append((float(np.mean(mean.argmax(1) == y)), -_log_loss(mean, y)))
        k = max(range(len(probas)), key=lambda i: scores[i])  # max keeps the earliest of equals
        counts[k] += 1
        total += probas[k]
        accuracy, negative_loss = scores[k]
        if (accuracy, negative_loss) > (best[0], -best[1]):
            best, best_counts = (accuracy, -negative_loss), counts.copy()
    return best_counts / best_counts.sum()


def combine(probas: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return sum(w * p for w, p in zip(weights, probas) if w > 0)


def nested_optimism(probas: Sequence[np.ndarray], y: np.ndarray, keys: np.ndarray, seed: int,
                    repeats: int = 10) -> Optional[dict]:
    """How optimistic the ensemble's validation accuracy is: weights fitted on all the held-out
    predictions and scored on them, against weights fitted on a random half of the held-out
    examples (by content key) and scored on the other half, both ways, ``repeats`` times."""
    units = np.unique(keys)
    if len(units) < 8:
        return None
    rng = np.random.default_rng(seed + 7_919)
    in_sample = float(np.mean(combine(probas, greedy_selection(probas, y)).argmax(1) == y))
    nested = []
    for _ in range(repeats):
        half = np.isin(keys, rng.permutation(units)[: len(units) // 2])
        correct = 0
        for fit, score in ((half, ~half), (~half, half)):
            weights = greedy_selection([p[fit] for p in probas], y[fit])
            correct += int(np.sum(combine([p[score] for p in probas], weights).argmax(1) == y[score]))
        nested.append(correct / len(y))
    return {"in_sample": in_sample, "nested": float(np.mean(nested)),
            "optimism": in_sample - float(np.mean(nested)), "repeats": repeats}


def build(entries: List[str], cells: Dict[str, Dict[tuple, dict]], predictions, seed: int
          ) -> Optional[Tuple[Dict[tuple, dict], Dict[str, dict], dict]]:
    """The ensemble of ``entries`` (labels of deliverable entries) over the (seed, fold) cells all
    of them finished with probabilities. ``predictions(record)`` reads a cell's predictions.
    Returns (records by (seed, fold), predictions by record name, the ensemble's description), or
    None when fewer than one entry qualifies."""
    members, left_out, common = [], [], None
    for label in entries:
        records = cells.get(label, {})
        if records and all("val_proba" in predictions(r) for r in records.values()):
            members.append(label)
            common = set(records) if common is None else common & set(records)
        elif records:
            left_out.append(label)  # cells made before compare kept probabilities
    if not members or not common:
        return None
    order = sorted(common)
    val = {label: [predictions(cells[label][k]) for k in order] for label in members}
    y = np.concatenate([p["val_true"] for p in val[members[0]]])
    keys = np.concatenate([p["val_key"] for p in val[members[0]]])
    pooled = [np.concatenate([p["val_proba"] for p in val[label]]).astype(np.float64) for label in members]
    weights = greedy_selection(pooled, y)
    chosen = [(label, w) for label, w in zip(members, weights) if w > 0]

    seed_tests: Dict[tuple, Optional[np.ndarray]] = {}

    def seed_test(label: str, s: int) -> Optional[np.ndarray]:  # the seed's fold models averaged on the test split
        if (label, s) not in seed_tests:
            parts = [predictions(cells[label][k]) for k in order if k[0] == s]
            seed_tests[(label, s)] = np.mean([p["test_proba"] for p in parts], axis=0).astype(np.float64) \
                if all("test_proba" in p for p in parts) else None
        return seed_tests[(label, s)]

    records, preds = {}, {}
    for (s, fold) in order:
        first = predictions(cells[chosen[0][0]][(s, fold)])
        val_proba = combine([predictions(cells[label][(s, fold)])["val_proba"].astype(np.float64)
                             for label, _ in chosen], [w for _, w in chosen])
        name = f"{LABEL}/seed{s}-fold{fold}"
        p = {"val_key": first["val_key"], "val_true": first["val_true"], "val_pred": val_proba.argmax(1),
             "val_proba": val_proba.astype(np.float32)}
        tests = [seed_test(label, s) for label, _ in chosen]
        test_accuracy = None
        if "test_key" in first and all(t is not None for t in tests):
            test_proba = combine(tests, [w for _, w in chosen])
            p.update(test_key=first["test_key"], test_true=first["test_true"], test_pred=test_proba.argmax(1),
                     test_proba=test_proba.astype(np.float32))
            test_accuracy = float(np.mean(p["test_pred"] == p["test_true"]))
        seconds = sum(cells[label][(s, fold)]["seconds"] for label, _ in chosen)
        records[(s, fold)] = {"cell": name, "label": LABEL, "seed": s, "fold": fold, "baseline": False,
                              "val_accuracy": float(np.mean(p["val_pred"] == p["val_true"])),
                              "test_accuracy": test_accuracy, "seconds": seconds}
        preds[name] = p
    description = {"members": [{"entry": label, "weight": float(w)} for label, w in chosen],
                   "candidates": members, "left_out": left_out, "cells": [list(k) for k in order], "rounds": ROUNDS,
                   "optimism": nested_optimism(pooled, y, keys, seed)}
    return records, preds, description
