"""--fit-best's deliveries other than a network run: a classical baseline fitted on every label,
and the ensemble made of its members' fold models. Each is a folder that mentor predict,
mentor export and mentor report open like a run folder:

- classical: model.skops (no pickle), inference.json (the raw inputs it takes: a table's columns
  and scaling, class names), config.json, split.json;
- ensemble (--deliver bag): ensemble.json (each member folder, its weight and the digest of its
  model file), inference.json, members/ENTRY/seedS-foldF/ (each a cell's folder as compare left
  it: a network run folder or a classical one); a single entry delivered as a bag is the same,
  with one entry's fold models at equal weights;
- ensemble (--deliver refit): the same with members/ENTRY/all-labels/, each member refitted on
  every label (OUT/refit/ENTRY, a cell of no fold), at the weights it was validated with;
- both: model.json (what it is, its validation figures), summary.json and test_predictions.npz
  (its test-split predictions, for the report's confusion matrix).
"""
from __future__ import annotations

import io
import os
import shutil
from typing import Dict, Optional, Tuple

import numpy as np

from ..classical import (ENSEMBLE_FILE, MODEL_FILE, MODEL_INFO, TEST_PREDICTIONS, as_features, describe,
                         member_identity, probabilities, read_json)
from ..files import write_atomically, write_json_atomically
from ..train import CHECKPOINT, INFERENCE, TrainConfig
from .cells import fit_classical, read_predictions

# A cell folder's files that make its model (the rest: metrics, predictions, the cell's record)
MODEL_FILES = (CHECKPOINT, MODEL_FILE, INFERENCE, "config.json", "split.json")
INPUT_KEYS = ("format", "dataset", "kind", "input_shape", "num_classes", "class_names", "feature_columns",
              "feature_scaling", "image_mean", "image_std", "embedding")


def _fresh(folder: str) -> None:
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)


def _write_test(folder: str, y_true: Optional[np.ndarray], y_pred: Optional[np.ndarray]) -> Optional[float]:
    if y_true is None or not len(y_true):
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, y_true=y_true, y_pred=y_pred)
    write_atomically(os.path.join(folder, TEST_PREDICTIONS), lambda f: f.write(buffer.getvalue()))
    return float(np.mean(y_true == y_pred))


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows it (a network's checkpoint is not copied for every
    fold: compare never rewrites a finished cell's files), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def deliver_classical(folder: str, entry, config: TrainConfig, dataset, validation: dict) -> dict:
    _fresh(folder)
    ds, split, model, used, notes = fit_classical(entry, config, dataset, folder)
    y_pred = probabilities(model, as_features(ds.x_test), ds.num_classes).argmax(1) if len(ds.x_test) else None
    info = {"kind": "classical", "entry": entry.label, "estimator": describe(model), "num_labeled": len(split.labeled),
            "num_unlabeled": used, "validation": validation, "warnings": notes,
            "final_test_accuracy": _write_test(folder, ds.y_test, y_pred), "test_accuracy_note":
            "the dataset's test split, never used for the choice"}
    write_json_atomically(os.path.join(folder, "summary.json"), info)
    write_json_atomically(os.path.join(folder, MODEL_INFO), info)  # written last: the folder is complete
    return {"test_accuracy": info["final_test_accuracy"], "estimator": info["estimator"]}


def _member_place(cell: str) -> str:
    """Where a fold cell's model goes in a delivered folder: members/ENTRY/seedS-foldF."""
    return os.path.join("members", *cell.split("/")[1:])


def _averaged_test(parts) -> Optional[tuple]:
    """(true classes, predicted classes) of the weighted average of ``parts``' test probabilities
    ((weight, a cell's predictions) each), or None where a part has none."""
    if not all("test_proba" in p for _, p in parts) or not len(parts[0][1]["test_true"]):
        return None
    return parts[0][1]["test_true"], sum(w * p["test_proba"] for w, p in parts).argmax(1)


def deliver_weighted(folder: str, sources, info: dict, test: Optional[tuple]) -> dict:
    """A weighted average of model folders into ``folder``: ``sources`` are (source folder, its
    place in ``folder``, entry, weight) with weights summing to 1; each member's model files are
    linked there and its identity recorded in ensemble.json. ``test``: (true classes, the
    average's predicted classes) on the test split, or None; ``info``: model.json's figures."""
    _fresh(folder)
    members, spec = [], None
    for source, relative, entry, weight in sources:
        target = os.path.join(folder, relative)
        os.makedirs(target, exist_ok=True)
        for file in MODEL_FILES:
            if os.path.exists(os.path.join(source, file)):
                _link_or_copy(os.path.join(source, file), os.path.join(target, file))
        if spec is None:
            spec = {k: v for k, v in read_json(os.path.join(source, INFERENCE)).items() if k in INPUT_KEYS}
        members.append({"folder": relative, "entry": entry, "weight": weight, **member_identity(target)})
    write_json_atomically(os.path.join(folder, INFERENCE), spec)
    write_json_atomically(os.path.join(folder, ENSEMBLE_FILE), {"format": 1, "members": members})
    accuracy = _write_test(folder, *test) if test is not None else None
    info = {**info, "final_test_accuracy": accuracy}
    write_json_atomically(os.path.join(folder, "summary.json"), info)
    write_json_atomically(os.path.join(folder, MODEL_INFO), info)  # written last: the folder is complete
    return {"test_accuracy": accuracy}


def deliver_ensemble(folder: str, out: str, description: dict, records: Dict[str, Dict[tuple, dict]], built,
                     seed: int, validation: dict) -> dict:
    """The ensemble as validated: every member's fold models (seed ``seed``'s), weighted."""
    cells = [tuple(k) for k in description["cells"]]
    sources = [(os.path.join(out, "cells", records[m["entry"]][key]["cell"]),
                _member_place(records[m["entry"]][key]["cell"]), m["entry"], m["weight"] / len(cells))
               for m in description["members"] for key in cells]
    ensemble_records, predictions, _ = built
    first = next(r for k, r in sorted(ensemble_records.items()) if k[0] == seed)
    p = predictions[first["cell"]]
    test = (p["test_true"], p["test_pred"]) if "test_true" in p else None
    info = {"kind": "ensemble", "entry": "ensemble", "deliver": "bag", "members": description["members"],
            "cells": description["cells"], "validation": validation, "optimism": description.get("optimism"),
            "test_accuracy_note": f"seed {seed}'s fold models on the dataset's test split, never used for the choice"}
    return deliver_weighted(folder, sources, info, test)


def deliver_bag(folder: str, out: str, label: str, records: Dict[tuple, dict], seed: int, validation: dict,
                kind: str) -> dict:
    """A single entry as validated: its fold models of seed ``seed``, averaged with equal weights."""
    keys = sorted(k for k in records if k[0] == seed)
    names = [records[k]["cell"] for k in keys]
    sources = [(os.path.join(out, "cells", name), _member_place(name), label, 1.0 / len(names)) for name in names]
    test = _averaged_test([(1.0 / len(names), read_predictions(os.path.join(out, "cells", name))) for name in names])
    info = {"kind": "ensemble", "entry": label, "deliver": "bag", "entry_kind": kind,
            "members": [{"entry": label, "weight": 1.0}], "cells": [list(k) for k in keys], "validation": validation,
            "test_accuracy_note": f"seed {seed}'s fold models on the dataset's test split, never used for the choice"}
    return deliver_weighted(folder, sources, info, test)


def deliver_refit_ensemble(folder: str, refits: Dict[str, Tuple[str, dict]], description: dict,
                           validation: dict) -> dict:
    """The ensemble with every member refitted on every label (as AutoGluon's refit_full), with the
    weights it was validated with. ``refits``: entry -> (its refitted cell's folder, its predictions)."""
    members = description["members"]
    sources = [(refits[m["entry"]][0], os.path.join("members", os.path.basename(refits[m["entry"]][0]), "all-labels"),
                m["entry"], m["weight"]) for m in members]
    test = _averaged_test([(m["weight"], refits[m["entry"]][1]) for m in members])
    info = {"kind": "ensemble", "entry": "ensemble", "deliver": "refit", "members": members,
            "validation": validation, "optimism": description.get("optimism"),
            "test_accuracy_note": "every member refitted on every label, on the dataset's test split, never used "
                                  "for the choice"}
    return deliver_weighted(folder, sources, info, test)


__all__ = ["deliver_bag", "deliver_classical", "deliver_ensemble", "deliver_refit_ensemble", "deliver_weighted"]
