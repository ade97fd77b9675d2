"""The classical baselines a practitioner would fit anyway, on exactly a cell's split.

Each is scikit-learn's estimator, fitted on the cell's labeled examples (``label_spreading`` and
``self_training`` also on its unlabeled pool) and scored like the cell's network: on the
held-out fold and the test split. Features are the dataset's rows as stored (tables and text
standardised on their training rows; images flattened to pixels in [0, 1]). Settings are
scikit-learn's defaults except where a default cannot learn from a few labels:

- ``gradient_boosting``: HistGradientBoosting's ``min_samples_leaf`` 20 makes a leaf of 20
  examples, so with 12-40 labels it cannot split and predicts one class. It gets
  min(20, max(2, n / (2 C))) for n labeled rows of C classes: 2 with 40 digits labels, 20 from
  40 labels a class up (docs/compare.md, "Classical baselines in the same table").
- ``random_forest`` and ``extra_trees`` (scikit-learn's forests, ``TREES`` trees, seeded; option
  ``n_estimators``): the first thing a practitioner fits on a small table.

``autogluon`` (optional, ``pip install mentor[autogluon]``) is AutoGluon-Tabular's
TabularPredictor on the same rows, with ``fit_pseudolabel`` on the cell's unlabeled pool; its
options: ``presets`` (default medium_quality), ``time_limit`` (seconds per cell, default 60),
``pseudolabel`` (default true). It is a reference row: its models are pickles that mentor does
not deliver, so it is never chosen.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import numpy as np

from ..classical import as_features
from ..errors import ConfigError
from ..options import COUNT, POSITIVE, Choice, check_option_ranges, check_option_types

# Trees of the forests (random_forest, extra_trees; NAME:n_estimators=N): BENCHMARKS.md, "Trees".
TREES = 100
# AutoGluon-Tabular's presets (its TabularPredictor.fit documentation)
AUTOGLUON_PRESETS = ("extreme_quality", "best_quality", "high_quality", "good_quality", "medium_quality",
                     "experimental_quality", "optimize_for_deployment", "interpretable", "ignore_text")

# LabelSpreading builds a k-nearest-neighbour graph over every row it is given; past ~10,000
# unlabeled rows that graph costs minutes and gigabytes per fit, so a seeded subset of the pool
# of this size joins the labeled rows (stated in compare.json with each cell).
LABEL_SPREADING_MAX_UNLABELED = 10_000


def gradient_boosting_leaf(n_labeled: int, num_classes: int) -> int:
    """HistGradientBoosting's min_samples_leaf for n labeled rows of C classes (its default 20
    from 40 rows a class up; never under 2, so a leaf is never one example)."""
    return int(min(20, max(2, n_labeled // (2 * max(num_classes, 1)))))


def _logistic_regression(seed: int, n: int, classes: int, options: dict):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _gradient_boosting(seed: int, n: int, classes: int, options: dict):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed, min_samples_leaf=gradient_boosting_leaf(n, classes))


def _random_forest(seed: int, n: int, classes: int, options: dict):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=int(options.get("n_estimators", TREES)), random_state=seed)


def _extra_trees(seed: int, n: int, classes: int, options: dict):
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=int(options.get("n_estimators", TREES)), random_state=seed)


def _label_spreading(seed: int, n: int, classes: int, options: dict):
    from sklearn.semi_supervised import LabelSpreading

    return LabelSpreading(kernel="knn")


def _self_training(seed: int, n: int, classes: int, options: dict):
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    return SelfTrainingClassifier(LogisticRegression(max_iter=1000))


def _autogluon(seed: int, n: int, classes: int, options: dict):
    return AutoGluonClassifier(seed=seed, **options)


@dataclass(frozen=True)
class Baseline:
    factory: Callable  # (seed, labeled rows, classes, options) -> an unfitted classifier
    semi_supervised: bool  # fitted on the unlabeled pool too (y == -1 rows)
    # The options it takes, as NAME:KEY=VALUE: each one's default, and its declared range or choices
    options: Dict[str, Tuple[object, object]] = field(default_factory=dict)
    deliverable: bool = True  # saved without pickle and served by predict / export; chosen


FOREST = {"n_estimators": (TREES, COUNT)}
BASELINES: Dict[str, Baseline] = {
    "logistic_regression": Baseline(_logistic_regression, False),
    "gradient_boosting": Baseline(_gradient_boosting, False),
    "random_forest": Baseline(_random_forest, False, FOREST),
    "extra_trees": Baseline(_extra_trees, False, FOREST),
    "label_spreading": Baseline(_label_spreading, True),
    "self_training": Baseline(_self_training, True),
    "autogluon": Baseline(_autogluon, True, {"presets": ("medium_quality", Choice(*AUTOGLUON_PRESETS)),
                                             "time_limit": (60.0, POSITIVE), "pseudolabel": (True, None)},
                          deliverable=False),
}


def check_options(name: str, options: dict, text: str) -> None:
    """Each option named, of its default's type and inside its declared range, before any work."""
    declared = BASELINES[name].options
    unknown = sorted(set(options) - set(declared))
    if unknown:
        takes = ", ".join(declared) or "no options"
        raise ConfigError(f"{text!r}: the classical baseline {name!r} takes {takes}; got {', '.join(unknown)}")
    defaults = {k: default for k, (default, _) in declared.items()}
    check_option_types(f"--methods {name}:", options, defaults)
    check_option_ranges(f"--methods {name}:", options, {k: r for k, (_, r) in declared.items() if r}, defaults)


def check_installed(name: str) -> None:
    """Stops a comparison before any training when a named baseline's library does not import."""
    if name == "autogluon":
        AutoGluonClassifier.library()


def seconds_per_cell(name: str, options: dict) -> float:
    """What a baseline's cell is expected to take, for compare's estimate: AutoGluon's time limit
    (twice with its pseudo-labelling fit); the scikit-learn models take seconds."""
    if name != "autogluon":
        return 0.0
    settings = AutoGluonClassifier(**options)  # its defaults where the options say nothing
    return settings.time_limit * (2 if settings.pseudolabel else 1)


def fit_baseline(name: str, seed: int, x_labeled: np.ndarray, y_labeled: np.ndarray,
                 x_pool: Callable[[], np.ndarray], num_classes: int, options: dict = None) -> tuple:
    """(fitted estimator, unlabeled rows used). ``x_pool()`` gives the unlabeled rows (not the
    labeled ones), read only by the baselines that use them."""
    baseline = BASELINES[name]
    model = baseline.factory(seed, len(y_labeled), num_classes, dict(options or {}))
    if not baseline.semi_supervised:
        return model.fit(as_features(x_labeled), y_labeled), 0
    pool = x_pool()
    if name == "label_spreading" and len(pool) > LABEL_SPREADING_MAX_UNLABELED:
        rng = np.random.default_rng(seed + 4_000_037)
        pool = pool[np.sort(rng.choice(len(pool), LABEL_SPREADING_MAX_UNLABELED, replace=False))]
    x = np.concatenate([as_features(x_labeled), as_features(pool)])
    y = np.concatenate([y_labeled, np.full(len(pool), -1)])
    return model.fit(x, y), len(pool)


class AutoGluonClassifier:
    """AutoGluon-Tabular's TabularPredictor behind scikit-learn's semi-supervised convention
    (fit(X, y) with y == -1 for unlabeled rows; predict_proba; classes_). Its models live in a
    temporary folder until ``close()``."""

    def __init__(self, seed: int = 0, presets: str = "medium_quality", time_limit: float = 60,
                 pseudolabel: bool = True):
        self.seed, self.presets, self.time_limit, self.pseudolabel = seed, presets, float(time_limit), pseudolabel
        self.folder = None

    @staticmethod
    def library():
        """AutoGluon-Tabular's TabularPredictor, or a ConfigError naming the extra that installs it."""
        try:
            from autogluon.tabular import TabularPredictor
        except ImportError as exc:
            raise ConfigError(f"the autogluon baseline needs AutoGluon-Tabular, which does not import here ({exc}); "
                              "install it with: pip install 'mentor[autogluon]'") from None
        return TabularPredictor

    def fit(self, x: np.ndarray, y: np.ndarray):
        import pandas as pd

        TabularPredictor = self.library()
        columns = [f"f{i}" for i in range(x.shape[1])]
        labeled = y >= 0
        train = pd.DataFrame(x[labeled], columns=columns)
        train["label"] = y[labeled]
        self.folder = tempfile.mkdtemp(prefix="mentor-autogluon-")
        # label_count_threshold 1: with a few labels a class, AutoGluon's default (10) would drop every class
        self.predictor = TabularPredictor(label="label", eval_metric="accuracy", path=self.folder, verbosity=0,
                                          problem_type="binary" if len(np.unique(y[labeled])) == 2 else "multiclass",
                                          learner_kwargs={"label_count_threshold": 1})
        # its models get this process's share of the cores (compare --jobs splits them), as mentor's
        # cells do: left to "auto", LightGBM's and CatBoost's threads take every core from the other jobs
        import torch

        self.predictor.fit(train, presets=self.presets, time_limit=self.time_limit,
                           ag_args_fit={"random_seed": self.seed}, num_cpus=torch.get_num_threads())
        pool = x[~labeled]
        if self.pseudolabel and len(pool):
            self.predictor.fit_pseudolabel(pd.DataFrame(pool, columns=columns), time_limit=self.time_limit,
                                           num_cpus=torch.get_num_threads())
        self.classes_ = np.asarray(self.predictor.class_labels, dtype=np.int64)
        self._columns = columns
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import pandas as pd

        frame = self.predictor.predict_proba(pd.DataFrame(x, columns=self._columns), as_multiclass=True)
        return frame[list(self.predictor.class_labels)].to_numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]

    def close(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
