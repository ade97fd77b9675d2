"""The classical baselines a practitioner would fit anyway, on exactly a cell's split.

Each is scikit-learn's estimator with scikit-learn's defaults (nothing tuned), fitted on the
cell's labeled examples (``label_spreading`` and ``self_training`` also on its unlabeled pool)
and scored like the cell's network: on the held-out fold and the test split. Features are the
dataset's rows as stored (tables and text standardised on their training rows; images
flattened to pixels in [0, 1]).
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

# LabelSpreading builds a k-nearest-neighbour graph over every row it is given; past ~10,000
# unlabeled rows that graph costs minutes and gigabytes per fit, so a seeded subset of the pool
# of this size joins the labeled rows (stated in compare.json with each cell).
LABEL_SPREADING_MAX_UNLABELED = 10_000


def _logistic_regression(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _gradient_boosting(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def _label_spreading(seed: int):
    from sklearn.semi_supervised import LabelSpreading

    return LabelSpreading(kernel="knn")


def _self_training(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    return SelfTrainingClassifier(LogisticRegression(max_iter=1000))


# name -> (factory(seed), uses the unlabeled pool)
BASELINES: Dict[str, tuple] = {
    "logistic_regression": (_logistic_regression, False),
    "gradient_boosting": (_gradient_boosting, False),
    "label_spreading": (_label_spreading, True),
    "self_training": (_self_training, True),
}


def as_features(x: np.ndarray) -> np.ndarray:
    """Rows as a 2-D float array: uint8 images become pixels in [0, 1]; cached embedding views
    (n, 1 + 2K, dim) (mentor.embedding) their clean embedding."""
    x = np.asarray(x)
    if x.ndim == 3 and x.dtype != np.uint8:
        x = x[:, 0]
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return (x.reshape(len(x), -1).astype(np.float32) / scale)


def fit_baseline(name: str, seed: int, x_labeled: np.ndarray, y_labeled: np.ndarray,
                 x_pool: Callable[[], np.ndarray]) -> tuple:
    """(fitted estimator, unlabeled rows used). ``x_pool()`` gives the unlabeled rows (not the
    labeled ones), read only by the baselines that use them."""
    factory, semi_supervised = BASELINES[name]
    model = factory(seed)
    if not semi_supervised:
        return model.fit(as_features(x_labeled), y_labeled), 0
    pool = x_pool()
    if name == "label_spreading" and len(pool) > LABEL_SPREADING_MAX_UNLABELED:
        rng = np.random.default_rng(seed + 4_000_037)
        pool = pool[np.sort(rng.choice(len(pool), LABEL_SPREADING_MAX_UNLABELED, replace=False))]
    x = np.concatenate([as_features(x_labeled), as_features(pool)])
    y = np.concatenate([y_labeled, np.full(len(pool), -1)])
    return model.fit(x, y), len(pool)
