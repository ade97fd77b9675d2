"""scikit-learn's door: any mentor method as an estimator, fit(X, y) with y == -1 for unlabeled rows.

    from mentor import SemiSupervisedClassifier
    clf = SemiSupervisedClassifier(method="fixmatch", steps=2000, threshold=0.9)  # method options as keywords
    clf.fit(X, y)                 # y: labels of any type; -1 (``unlabeled``) marks the unlabeled rows
    clf.fit(df, label="species")  # or a DataFrame and its label column: empty cells are the unlabeled rows
    clf.predict(X_new); clf.predict_proba(X_new); clf.score(X_test, y_test)  # score: labeled rows only

The convention is scikit-learn's semi-supervised one (LabelSpreading, SelfTrainingClassifier).
fit trains ``steps`` steps of the method on every labeled row and every unlabeled one (the
labeled rows join the unlabeled pool too, as in the papers), with the features standardised on
all rows of X (so ``strong_noise`` and ``input_noise`` are in units of each feature's std).
Methods that compare two noisy views (MixMatch, the Pi-model, Mean Teacher) get ``input_noise``
= ``strong_noise`` unless it is given. Keyword arguments that are not parameters below are the
method's hyper-parameters (``mentor methods``); get_params / set_params include them, so
GridSearchCV can search them. ``score`` is the accuracy on the rows whose y is a label (an
unlabeled row has no truth to score), so GridSearchCV and cross_val_score on semi-supervised
data score each fold's labeled rows. ``n_jobs`` > 1 starts worker processes the way Python's
multiprocessing does: a script that uses it must guard its top level with
``if __name__ == "__main__":`` (each worker imports the script). Nothing is done in __init__;
the fitted network and scaling are the only state (``model_``, ``classes_``, ``n_features_in_``),
and the estimator pickles.

``method="auto"`` chooses for you: `mentor compare` trains each of ``candidates`` (default
mentor.compare.DEFAULT_METHODS; entries as on the command line, e.g. "fixmatch:threshold=0.9")
and the classical ``baselines`` (default mentor.compare.DEFAULT_BASELINES; [] for none) on
``folds`` stratified folds of the labeled rows, in ``n_jobs`` processes, with the ensemble of
their fold models, and delivers whatever compare's choice rule (``choice_rule``, default
compare's) picks: a network trained on every row, a scikit-learn model fitted on every row, or
the ensemble (``chosen_method_``;
``chosen_kind_``: "network", "classical" or "ensemble"; ``comparison_`` holds each entry's
validation accuracy, its difference to supervised training with a 95% interval, and the
resolution of that validation).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .data import ArrayDataset
from .data.sources.tables import column_scaling
from .errors import ConfigError
from .registry import METHODS


class SemiSupervisedClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, method: str = "fixmatch", model: str = "mlp", steps: int = 1000, batch_size: int = 64,
                 unlabeled_batch_size: int = 448, lr: float = 0.03, strong_noise: float = 0.15,
                 input_noise=None, ema_decay=None, model_options=None, unlabeled=-1, random_state: int = 0,
                 device: str = "cpu", candidates=None, baselines=None, folds: int = 5, n_jobs: int = 1,
                 choice_rule=None, **method_options):
        self.method = method
        self.model = model
        self.steps = steps
        self.batch_size = batch_size
        self.unlabeled_batch_size = unlabeled_batch_size
        self.lr = lr
        self.strong_noise = strong_noise
        self.input_noise = input_noise
        self.ema_decay = ema_decay
        self.model_options = model_options
        self.unlabeled = unlabeled
        self.random_state = random_state
        self.device = device
        self.candidates = candidates
        self.baselines = baselines
        self.choice_rule = choice_rule
        self.folds = folds
        self.n_jobs = n_jobs
        self._method_options = method_options  # private: scikit-learn's checks allow no other attribute

    # --- parameters: the signature's, plus the method's hyper-parameters given as keywords ---
    def get_params(self, deep: bool = True) -> dict:
        return {**super().get_params(deep), **self._method_options}

    def set_params(self, **params):
        own = set(self._get_param_names())
        self._method_options = {**self._method_options, **{k: v for k, v in params.items() if k not in own}}
        return super().set_params(**{k: v for k, v in params.items() if k in own})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.classifier_tags.poor_score = False
        return tags

    # --- fit / predict ----------------------------------------------------------------------
    def _unlabeled_rows(self, y) -> np.ndarray:
        return np.array([_same(v, self.unlabeled) for v in y], dtype=bool)

    def _split_labels(self, y):
        y = column_or_1d(y, warn=True)
        is_unlabeled = self._unlabeled_rows(y)
        labeled = y[~is_unlabeled]
        if len(labeled) == 0:
            raise ValueError(f"y has no labeled row: every entry is the unlabeled marker {self.unlabeled!r}")
        kinds = sorted({"str" if isinstance(v, str) else "int" if isinstance(v, (int, np.integer)) else type(v).__name__
                        for v in labeled})
        if "str" in kinds and len(kinds) > 1:
            raise ValueError(f"y mixes labels of types {', '.join(kinds)}; give every label the same type "
                             f"(unlabeled rows: the marker {self.unlabeled!r}, or None)")
        check_classification_targets(labeled)
        return is_unlabeled, labeled

    def fit(self, X, y=None, label=None):
        """``label``: with a pandas DataFrame ``X`` and no ``y``, the column of class labels (empty
        cells and NaN mark the unlabeled rows, as the command line's ``--target``); the other
        columns are the features."""
        from .train import TrainConfig, Trainer

        self.label_ = label
        X, y = self._frame_door(X, y, label)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2, y_numeric=False)
        is_unlabeled, y_labeled = self._split_labels(y)
        self.classes_, encoded = np.unique(y_labeled, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}) among its labeled rows; a classifier needs 2")
        if self.method != "auto" and self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose 'auto' or one of {', '.join(METHODS.names())}")
        if self.method == "auto" and self._method_options:
            raise ConfigError(f"method options {sorted(self._method_options)} go with a named method; with "
                              "method='auto' give them inside candidates, e.g. 'fixmatch:threshold=0.9'")
        self.mean_, self.scale_ = column_scaling(X)  # without overflow, even for values near 1e308
        x = ((X - self.mean_) / self.scale_).astype(np.float32)
        x_labeled, x_unlabeled = x[~is_unlabeled], x[is_unlabeled]
        dataset = ArrayDataset("arrays", x_labeled, encoded.astype(np.int64), x_labeled[:1], encoded[:1].astype(np.int64),
                               len(self.classes_), x_unlabeled=x_unlabeled)
        config = TrainConfig(method="supervised", num_labeled=0, model=self.model,
                             model_options=dict(self.model_options or {}), steps=int(self.steps),
                             batch_size=int(self.batch_size), unlabeled_batch_size=int(self.unlabeled_batch_size),
                             lr=float(self.lr), strong_noise=self.strong_noise, input_noise=self.input_noise,
                             ema_decay=self.ema_decay, eval_every=0, seed=int(self.random_state), device=self.device,
                             progress=False)
        if self.method == "auto":
            self.model_ = self._choose(config, dataset)
            return self
        method, options = self.method, dict(self._method_options)
        input_noise = self.input_noise
        if input_noise is None and METHODS.get(method).second_view:
            input_noise = self.strong_noise
        config = replace(config, method=method, method_options=options, input_noise=input_noise)
        trainer = Trainer(config, dataset=dataset)
        trainer.fit()
        model = trainer.ema.module if trainer.ema is not None else trainer.method.eval_model()
        self.model_ = model.to("cpu").eval()
        return self

    def _frame_door(self, X, y, label):
        """fit(df, label="species"): the label column becomes y (empty cells -> the unlabeled marker)."""
        if label is None:
            return X, y
        if y is not None:
            raise ValueError("give y or label=, not both: label= names the column of X that holds the labels")
        columns = getattr(X, "columns", None)
        if columns is None:
            raise ValueError("label= names a column of a pandas DataFrame; X is not one (pass y instead)")
        repeated = sorted({str(c) for c in columns[columns.duplicated()]})
        if repeated:
            raise ValueError(f"X has several columns named {', '.join(map(repr, repeated))}; give each column its "
                             "own name (the label column, the features and predict's columns are found by name)")
        if label not in columns:
            raise ValueError(f"label={label!r} is not a column of X; its columns: {', '.join(map(str, columns))}")
        raw = X[label].to_numpy(dtype=object)
        empty = np.array([v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())
                          for v in raw], dtype=bool)
        y = raw.copy()
        # Integer labels in a column with empty cells come as floats (pandas has no NaN int): they are classes.
        if all(isinstance(v, (float, np.floating)) and float(v).is_integer() for v in y[~empty]):
            y[~empty] = [int(v) for v in y[~empty]]
        y[empty] = self.unlabeled
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in y):
            y = y.astype(np.int64)  # integer classes as numbers, as a plain y would be
        from pandas.api.types import is_numeric_dtype  # X is a DataFrame here: pandas is installed

        features = X.drop(columns=[label])
        text = [c for c in features.columns if not is_numeric_dtype(features[c].dtype)]
        if text:
            raise ValueError(f"feature column(s) {', '.join(map(str, text))} are not numeric; encode them first "
                             "(e.g. one-hot) or drop them")
        return features, y

    def _without_label(self, X):
        """predict/score on the training DataFrame itself: its label column is not a feature."""
        label = getattr(self, "label_", None)
        if label is not None and label in getattr(X, "columns", ()):
            return X.drop(columns=[label])
        return X

    def _choose(self, config, dataset):
        """method='auto': `mentor compare` on folds of the labeled rows (the candidates and the
        classical baselines), then its choice delivered as --fit-best does (a network trained on
        every row, a classical model fitted on every row, or the ensemble's fold models), held in
        memory. ``comparison_`` keeps its table."""
        import tempfile

        from .compare import DEFAULT_METHODS, compare
        from .compare.plan import DEFAULT_BASELINES
        from .inference import load_model

        with tempfile.TemporaryDirectory(prefix="mentor-auto-") as out:
            result = compare(config, methods=list(self.candidates or DEFAULT_METHODS), folds=int(self.folds),
                             dataset=dataset, test=False, jobs=int(self.n_jobs), progress=False, out=out,
                             baselines=DEFAULT_BASELINES if self.baselines is None else list(self.baselines),
                             fit_best=True, rule=self.choice_rule)
            model = load_model(result["best"]["folder"])
        table = result["tables"]["all"]
        self.chosen_method_, self.chosen_kind_ = table["chosen"], result["best"]["kind"]
        self.comparison_ = {"rows": table["rows"], "chosen": table["chosen"], "rule": table["rule"],
                            "resolution": table["resolution"], "ensemble": table.get("ensemble")}
        return model

    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, self._without_label(X), dtype=np.float64, reset=False)
        scaled = ((X - self.mean_) / self.scale_).astype(np.float32)
        if not isinstance(self.model_, torch.nn.Module):  # method="auto": a delivered model (mentor.inference)
            return np.asarray(self.model_.predict_proba(scaled), dtype=np.float64)
        x = torch.as_tensor(scaled)
        parts = [torch.softmax(self.model_(x[i:i + 4096]).float(), dim=-1) for i in range(0, len(x), 4096)]
        return torch.cat(parts).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        probs = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[probs.argmax(axis=1)]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Accuracy on the labeled rows of (X, y): rows whose y is the unlabeled marker carry no
        truth and are left out (so GridSearchCV's folds of semi-supervised data score what they
        can). With a DataFrame fitted by label=, y may be left out: its label column is read."""
        if y is None and getattr(self, "label_", None) is not None:
            _, y = self._frame_door(X, None, self.label_)
        if y is None:
            raise ValueError("score needs y (or a DataFrame with the label column the estimator was fitted with)")
        y = column_or_1d(np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y)
        labeled = ~self._unlabeled_rows(y)
        if not labeled.any():
            raise ValueError(f"y has no labeled row to score: every entry is the unlabeled marker {self.unlabeled!r}")
        rows = np.flatnonzero(labeled)
        X = self._without_label(X)
        X = X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]
        weights = None if sample_weight is None else np.asarray(sample_weight)[rows]
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y[rows], self.predict(X), sample_weight=weights))


def _same(value, marker) -> bool:
    """value == marker without numpy's elementwise surprises (strings against -1, NaN markers)."""
    if value is None:  # a missing label, as an empty cell is
        return True
    if isinstance(marker, float) and np.isnan(marker):
        return isinstance(value, float) and np.isnan(value)
    if isinstance(value, str) and not isinstance(marker, str):  # "-1" in string labels is the marker -1
        return value.strip() == str(marker)
    try:
        return bool(value == marker)
    except (TypeError, ValueError):
        return False
