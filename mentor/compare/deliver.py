"""--fit-best's deliveries other than a network run: a classical baseline fitted on every label,
and the ensemble made of its members' fold models. Each is a folder that mentor predict,
mentor export and mentor report open like a run folder:

- classical: model.skops (no pickle), inference.json (the raw inputs it takes: a table's columns
  and scaling, class names), config.json, split.json;
- ensemble: ensemble.json (each member folder and its weight), inference.json, members/ENTRY/
  seedS-foldF/ (each a cell's folder as compare left it: a network run folder or a classical
  one);
- both: model.json (what it is, its validation figures), summary.json and test_predictions.npz
  (its test-split predictions, for the report's confusion matrix).
"""
from __future__ import annotations

import io
import os
import shutil
from typing import Dict, Optional

import numpy as np

from ..classical import (ENSEMBLE_FILE, MODEL_FILE, MODEL_INFO, TEST_PREDICTIONS, as_features, describe, probabilities,
                         read_json)
from ..files import write_atomically, write_json_atomically
from ..train import CHECKPOINT, INFERENCE, TrainConfig
from .cells import fit_classical

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


def deliver_ensemble(folder: str, out: str, description: dict, records: Dict[str, Dict[tuple, dict]], built,
                     seed: int, validation: dict) -> dict:
    _fresh(folder)
    cells = [tuple(k) for k in description["cells"]]
    members = []
    spec = None
    for member in description["members"]:
        for key in cells:
            name = records[member["entry"]][key]["cell"]
            source = os.path.join(out, "cells", name)
            relative = os.path.join("members", *name.split("/")[1:])
            target = os.path.join(folder, relative)
            os.makedirs(target, exist_ok=True)
            for file in MODEL_FILES:
                if os.path.exists(os.path.join(source, file)):
                    _link_or_copy(os.path.join(source, file), os.path.join(target, file))
            if spec is None:
                spec = {k: v for k, v in read_json(os.path.join(source, INFERENCE)).items() if k in INPUT_KEYS}
            members.append({"folder": relative, "entry": member["entry"], "weight": member["weight"] / len(cells)})
    write_json_atomically(os.path.join(folder, INFERENCE), spec)
    write_json_atomically(os.path.join(folder, ENSEMBLE_FILE), {"format": 1, "members": members})
    ensemble_records, predictions, _ = built
    first = next(r for k, r in sorted(ensemble_records.items()) if k[0] == seed)
    p = predictions[first["cell"]]
    test = _write_test(folder, p.get("test_true"), p.get("test_pred"))
    info = {"kind": "ensemble", "entry": "ensemble", "members": description["members"], "cells": description["cells"],
            "validation": validation, "optimism": description.get("optimism"), "final_test_accuracy": test,
            "test_accuracy_note": f"seed {seed}'s fold models on the dataset's test split, never used for the choice"}
    write_json_atomically(os.path.join(folder, "summary.json"), info)
    write_json_atomically(os.path.join(folder, MODEL_INFO), info)
    return {"test_accuracy": test}


__all__ = ["deliver_classical", "deliver_ensemble"]
