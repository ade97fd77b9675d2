"""What a comparison trains: its entries (methods and classical baselines), its study settings
(the whole pool, a fraction of it, a class-mismatch rate) and its cells, one run each.

An entry is written as on the command line: a registered method (``fixmatch``), a method with
options (``meta_pseudo_labels:feedback=none:labels=argmax``) or a scikit-learn baseline
(``logistic_regression``, see baselines.py). A cell is one entry trained on one fold of the
labels of one seed in one setting; its folder is an ordinary run folder.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..errors import ConfigError
from ..options import parse_options
from ..registry import METHODS
from ..train import TrainConfig
from .baselines import BASELINES, check_options

# The default entries by the kind of data. Methods: those that beat supervised training on
# every problem of BENCHMARKS.md at their defaults (FixMatch, UDA, MixMatch, MPL), and Mean
# Teacher, the strongest of the consistency family; DivideMix (for noisy labels) and the slow
# or phase-split methods are one --methods away. Of the modern pseudo-labelling family, SimMatch:
# the best mean difference to supervised training on the validation folds of digits-50, SST-2-20,
# SST-2-100, Fashion-MNIST-1000 and CIFAR-10-40 embeddings (+6.0, -5.0, +2.0, +1.5, +2.5; mean
# +1.4; FixMatch +4.0, +10.0, +3.0, +0.8, -20.0), and the only one at or above supervised training
# on CIFAR-10-40's validation, the few-label case the family is for (ReFixMatch, +8.0 on two of
# the others, was -17.5 there; BENCHMARKS.md "The modern pseudo-labelling family"). Baselines:
# what a practitioner would fit anyway on feature data; on images a pixel-space classifier is no
# practitioner's choice. The forests: the first model a practitioner fits on a small table
# (BENCHMARKS.md, "The answer as a model").
DEFAULT_METHODS = ("supervised", "fixmatch", "uda", "mean_teacher", "mixmatch", "meta_pseudo_labels", "simmatch")
DEFAULT_BASELINES = ("logistic_regression", "gradient_boosting", "random_forest", "extra_trees", "label_spreading")
# Feature data has no augmentation: FixMatch, UDA and MPL's teacher need a strong view, the
# two-view methods (Mean Teacher, MixMatch) a noisy one. The estimator's default, in units of
# each feature's standard deviation when the data is standardised.
FEATURE_NOISE = 0.15


@dataclass(frozen=True)
class Entry:
    """One row of the comparison: ``method`` with ``options``, or a classical baseline."""

    label: str
    method: str
    options: Dict = field(default_factory=dict, hash=False)
    baseline: bool = False

    @property
    def semi_supervised(self) -> bool:
        """Whether the entry learns from the unlabeled data (its verdict is then about that data)."""
        return BASELINES[self.method].semi_supervised if self.baseline else self.method != "supervised"

    @property
    def deliverable(self) -> bool:
        """Whether --fit-best can deliver it (and the choice may name it): not AutoGluon's pickles."""
        return BASELINES[self.method].deliverable if self.baseline else True


def parse_entry(text: str) -> Entry:
    name, *pairs = text.split(":")
    if name in BASELINES:
        options = parse_options(pairs, f"--methods {text}")
        check_options(name, options, text)
        return Entry(text, name, options, baseline=True)
    if name not in METHODS:
        valid = ", ".join(METHODS.names() + sorted(BASELINES))
        raise ConfigError(f"unknown method {name!r} in --methods; choose from: {valid} "
                          "(options as NAME:KEY=VALUE:KEY=VALUE)")
    options = parse_options(pairs, f"--methods {text}")
    METHODS.get(name).check_hparams(options, f"--methods {name}:")  # every option's type and range, before any cell trains
    return Entry(text, name, options)


def entry_text(method: str, options: Optional[Dict] = None) -> str:
    """The command-line form of a method with options: ("meta_pseudo_labels", {"feedback": "none"})
    -> "meta_pseudo_labels:feedback=none" (values as parse_value reads them back)."""
    def value(v) -> str:
        if isinstance(v, (list, tuple)):
            return ",".join(value(x) for x in v) + ("," if len(v) == 1 else "")
        if isinstance(v, dict):
            raise ConfigError(f"option value {v!r} of {method}: a dict has no command-line form")
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return ":".join([method, *(f"{k}={value(v)}" for k, v in (options or {}).items())])


def resolve_entries(methods: Optional[Sequence[str]], baselines: Optional[Sequence[str]],
                    features: bool) -> List[Entry]:
    """The comparison's rows: the given methods (default: DEFAULT_METHODS), always with
    supervised training first; then the baselines (default: DEFAULT_BASELINES on feature data,
    none on images). A baseline may also be named in ``methods``."""
    texts = list(methods) if methods else list(DEFAULT_METHODS)
    if baselines is None:
        baselines = DEFAULT_BASELINES if features and not methods else ()
    texts += [b for b in baselines if b not in texts]
    entries = [parse_entry(t) for t in dict.fromkeys(texts)]
    if not any(e.label == "supervised" for e in entries):
        entries.insert(0, parse_entry("supervised"))
    entries.sort(key=lambda e: e.label != "supervised")  # the reference first, the others as given
    return entries


@dataclass(frozen=True)
class Setting:
    """One point of a study: TrainConfig fields that shape the data (the pool's fraction, the
    labeled classes and the mismatch rate). The plain comparison has one, ``all``."""

    name: str
    overrides: Dict = field(default_factory=dict, hash=False)


def study_settings(unlabeled_fractions: Optional[Sequence[float]], class_mismatch: Optional[Sequence[float]],
                   labeled_classes: Optional[Sequence[int]], num_classes: int) -> List[Setting]:
    """Every combination of the unlabeled fractions and mismatch rates asked for; ``all`` alone
    when neither is. Mismatch labels the first 60% of the classes unless ``labeled_classes``
    names them (Oliver et al.: the 6 animal classes of CIFAR-10's 10)."""
    fractions = list(unlabeled_fractions) if unlabeled_fractions else [None]
    rates = list(class_mismatch) if class_mismatch else [None]
    if labeled_classes is not None and not class_mismatch:
        raise ConfigError("--labeled-classes goes with --class-mismatch R ...")
    classes = [int(c) for c in labeled_classes] if labeled_classes else list(range(max(2, round(0.6 * num_classes))))
    settings = []
    for rate in rates:
        for fraction in fractions:
            overrides, words = {}, []
            if rate is not None:
                overrides.update(labeled_classes=classes, class_mismatch=float(rate))
                words.append(f"mismatch-{float(rate):g}")
            if fraction is not None:
                overrides["unlabeled_fraction"] = float(fraction)
                words.append(f"unlabeled-{float(fraction):g}")
            settings.append(Setting("_".join(words) or "all", overrides))
    return settings


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "-", text).strip("-")


@dataclass(frozen=True)
class Cell:
    """One entry trained on fold ``fold`` of ``folds`` of seed ``seed``'s labels in ``setting``
    (``folds`` 0: no validation fold, every label trains; the test split alone scores it)."""

    setting: Setting
    entry: Entry
    seed: int
    fold: int
    folds: int

    @property
    def name(self) -> str:
        return f"{self.setting.name}/{_slug(self.entry.label)}/seed{self.seed}-fold{self.fold}"

    def folder(self, out: str) -> str:
        return os.path.join(out, "cells", self.name)

    def config(self, base: TrainConfig, out: Optional[str], features: bool) -> TrainConfig:
        values = {**base.to_dict(), **self.setting.overrides, "seed": self.seed, "out": out, "progress": False,
                  "validation_fold": [self.fold, self.folds] if self.folds else None}
        if not self.entry.baseline:
            values.update(method=self.entry.method, method_options=dict(self.entry.options))
            if features and values["input_noise"] is None and METHODS.get(self.entry.method).second_view:
                values["input_noise"] = values["strong_noise"]  # two noisy views of a feature row
        else:
            values.update(method="supervised", method_options={})
        return TrainConfig(**values)


def make_cells(settings: List[Setting], entries: List[Entry], seeds: Sequence[int], folds: int) -> List[Cell]:
    """Seed by seed and fold by fold, every entry of a fold together: a comparison stopped part
    way holds whole folds, which pair across entries."""
    return [Cell(setting, entry, seed, fold, folds) for setting in settings for seed in seeds
            for fold in range(max(folds, 1)) for entry in entries]
