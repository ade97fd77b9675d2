"""Seeded labeled / unlabeled splits. The indices are saved with every run."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from .arrays import ArrayDataset

# The share of a source's labeled examples held out as its test split when it has none of its own
# (a table without --test-path, an image folder without test/)
TEST_FRACTION = 0.2


def stratified_hold_out(y: np.ndarray, test_fraction: float, seed: int, what: str, remedy: str,
                        class_names: Optional[Sequence] = None):
    """(train positions, test positions) into labels ``y``: a seeded stratified share for testing.
    Errors name ``what`` is split (and the classes, by ``class_names`` where given) and suggest ``remedy``."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    values, counts = np.unique(y, return_counts=True)
    single = [class_names[v] if class_names is not None else v for v in values[counts < 2].tolist()]
    if single:
        raise DataError(f"{what}: class(es) {', '.join(map(str, single[:5]))}{', ...' if len(single) > 5 else ''} "
                        "have a single example, which cannot be both trained on and held out for a stratified test "
                        f"split; {remedy}")
    try:
        train, test = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise DataError(f"{what}: cannot hold out a stratified test split of {test_fraction:g} of the {len(y)} "
                        f"({exc}); {remedy}") from None
    return np.sort(train), np.sort(test)


@dataclass
class Split:
    """Indices into the training set. unlabeled may overlap labeled (the papers' default pool);
    validation is held out of both (for choosing settings without touching the test split)."""

    labeled: List[int]
    unlabeled: List[int]
    seed: int
    protocol: str
    validation: List[int] = field(default_factory=list)
    # --label-noise: the labeled examples whose label was redrawn, and their noisy labels.
    noisy: List[int] = field(default_factory=list)
    noisy_labels: List[int] = field(default_factory=list)
    # Datasets read from a file of rows (tables): which rows became train, test and unlabeled.
    dataset_rows: Optional[dict] = None
    # A pool streamed from shards is not listed (it may hold millions): ``unlabeled`` is empty and
    # this says what the pool is: {"size": indices of the training shards then the extra ones,
    # "excluded": the indices never drawn (held-out labels), "fingerprint": the shards' names}.
    streamed_pool: Optional[dict] = None

    def labels(self, y_train: np.ndarray) -> np.ndarray:
        """The labels of the labeled examples as training sees them (noisy where --label-noise put noise)."""
        y = np.asarray(y_train)[self.labeled].copy()
        if self.noisy:
            position = {index: i for i, index in enumerate(self.labeled)}
            y[[position[i] for i in self.noisy]] = self.noisy_labels
        return y

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(asdict(self), f)

    @classmethod
    def load(cls, path: str) -> "Split":
        with open(path) as f:
            return cls(**json.load(f))


def class_name(c: int, names: Optional[List[str]] = None) -> str:
    """How errors name class ``c``: by the data's own name where it has one."""
    return f"class {names[c]!r}" if names is not None and c < len(names) else f"class {c}"


def balanced_labeled_indices(y: np.ndarray, num_labeled: int, num_classes: int, seed: int,
                             exclude: Optional[np.ndarray] = None, what: str = "--num-labeled",
                             names: Optional[List[str]] = None) -> np.ndarray:
    """num_labeled // C examples of every class, drawn with their own seed.

    When num_labeled is not a multiple of C, the remainder goes to randomly chosen classes
    (one extra each), so the split is as balanced as it can be. Errors name the flag (``what``)
    and the classes (``names``).
    """
    if num_labeled < num_classes:
        raise DataError(
            f"{what} {num_labeled} leaves some of the {num_classes} classes with no example; ask for at least "
            f"{num_classes}"
        )
    available = np.ones(len(y), bool)
    if exclude is not None:
        available[exclude] = False
    if num_labeled > available.sum():
        raise DataError(f"{what} {num_labeled} exceeds the {int(available.sum())} available training examples")
    rng = np.random.default_rng(seed)
    per_class = np.full(num_classes, num_labeled // num_classes)
    per_class[rng.choice(num_classes, num_labeled % num_classes, replace=False)] += 1
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero((y == c) & available)
        if len(members) == 0:
            raise DataError(f"{class_name(c, names)} has no training example, so it can get none for {what}")
        if len(members) < per_class[c]:
            raise DataError(
                f"{class_name(c, names)} has {len(members)} training examples but the balanced split of "
                f"{what} {num_labeled} needs {per_class[c]}"
            )
        chosen.append(rng.choice(members, per_class[c], replace=False))
    return np.sort(np.concatenate(chosen))


NOISE_KINDS = ("symmetric", "asymmetric")


def add_label_noise(split: Split, y_train: np.ndarray, num_classes: int, rate: float, kind: str, seed: int) -> Split:
    """Corrupts the labels of round(rate x labeled) labeled examples, chosen with their own seed;
    the split records which ones and their new labels. "symmetric" redraws each chosen label
    uniformly from all C classes, the true one included (DivideMix's convention, so the share of
    wrong labels is rate x (1 - 1/C)); "asymmetric" moves class c to class (c + 1) mod C, a
    class-dependent flip (DivideMix's CIFAR-10 map pairs similar classes, truck -> automobile,
    cat <-> dog, ...; without such a map for every dataset, the next class stands in)."""
    if not 0.0 <= rate <= 1.0:
        raise DataError(f"label noise must be a fraction in [0, 1], got {rate}")
    if kind not in NOISE_KINDS:
        raise DataError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    rng = np.random.default_rng(seed + 2_000_003)
    labeled = np.asarray(split.labeled)
    chosen = np.sort(rng.choice(labeled, int(round(rate * len(labeled))), replace=False))
    true = np.asarray(y_train)[chosen]
    new = rng.integers(0, num_classes, len(chosen)) if kind == "symmetric" else (true + 1) % num_classes
    split.noisy, split.noisy_labels = chosen.astype(int).tolist(), np.asarray(new).astype(int).tolist()
    return split


PROTOCOLS = ("balanced", "mpl")
MPL_SKIP = 5000  # MPL appendix C.1: the first 5,000 training images are reserved for validation


def mpl_labeled_indices(n: int, num_labeled: int, ordered: bool) -> np.ndarray:
    """MPL appendix C.1: skip the first 5,000 training images (in the official order), label the next N."""
    if not ordered:
        raise DataError("the 'mpl' split protocol takes images by their position in the official files, "
                        "but this dataset's order is not the official one (e.g. an image folder); "
                        "use --split balanced")
    if MPL_SKIP + num_labeled > n:
        raise DataError(f"the 'mpl' split needs {MPL_SKIP} + {num_labeled} training examples, "
                        f"the dataset has {n}")
    return np.arange(MPL_SKIP, MPL_SKIP + num_labeled)


def fold_of_labeled(labeled: np.ndarray, y: np.ndarray, num_classes: int, fold: Tuple[int, int], seed: int,
                    names: Optional[List[str]] = None):
    """(training part, held-out part) of the labeled examples for fold ``index`` of ``folds``:
    scikit-learn's StratifiedKFold, shuffled with ``seed``, so every labeled example is held out
    exactly once over the folds and each held-out part has every class in proportion."""
    from sklearn.model_selection import StratifiedKFold

    index, folds = fold
    if folds < 2 or not 0 <= index < folds:
        raise DataError(f"validation fold {index} of {folds}: need 2 or more folds and 0 <= fold < folds")
    labels = np.asarray(y)[labeled]
    counts = np.bincount(labels, minlength=num_classes)
    fewest, c = int(counts.min()), int(counts.argmin())
    if fewest < folds:
        remedy = f"use --folds {fewest} or give more labels" if fewest >= 2 else \
            f"give at least {folds} labels of every class"
        raise DataError(f"{class_name(c, names)} has {fewest} labeled example(s), fewer than the {folds} validation folds "
                        f"(each fold holds out at least one example of every class): {remedy}")
    parts = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    train, held_out = parts[index]
    return np.sort(labeled[train]), np.sort(labeled[held_out])


def shape_pool(pool: np.ndarray, n_train: int, seed: int, fraction: float = 1.0,
               mismatch: Optional[float] = None) -> np.ndarray:
    """The unlabeled pool as a study asks for it (Oliver et al. 2018, section 4).
    ``mismatch`` R: a pool of fixed size P = min(in-class, other-class candidates), of which a
    fraction R is drawn from the extra examples (indices >= n_train: the classes the labels do not
    cover) and 1 - R from the training examples, so only the composition changes with R.
    ``fraction`` f: a seeded f of the pool (how the gain grows with the amount of unlabeled data).
    Both draws are seeded and nested: a smaller fraction is a subset of a larger one."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"unlabeled fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed + 3_000_017)
    if mismatch is not None:
        if not 0.0 <= mismatch <= 1.0:
            raise DataError(f"class mismatch must be a fraction in [0, 1], got {mismatch}")
        inside, outside = pool[pool < n_train], pool[pool >= n_train]
        size = min(len(inside), len(outside))
        if size == 0:
            raise DataError("class mismatch needs unlabeled examples both of the labeled classes and of the others")
        n_out = int(round(mismatch * size))
        pool = np.sort(np.concatenate([rng.permutation(inside)[:size - n_out], rng.permutation(outside)[:n_out]]))
    if fraction < 1.0:
        keep = max(1, int(round(fraction * len(pool))))
        pool = np.sort(rng.permutation(pool)[:keep])
    return pool


def make_split(y_train: np.ndarray, num_labeled: int, num_classes: int, seed: int,
               unlabeled_pool: str = "all", extra_unlabeled: int = 0, protocol: str = "balanced",
               ordered: bool = True, validation_size: int = 0, validation_fold: Optional[Tuple[int, int]] = None,
               fold_seed: int = 0, unlabeled_fraction: float = 1.0, class_mismatch: Optional[float] = None,
               class_names: Optional[List[str]] = None) -> Split:
    """Labeled indices by the protocol ("balanced": seeded, N/C per class, or with num_labeled=0
    every training example, e.g. a table's labeled rows; "mpl": appendix C.1);
    the unlabeled pool is every training example ("all", as in the papers) or the ones left over
    ("rest"). Indices >= len(y_train) refer to the dataset's extra unlabeled examples.
    validation_size examples are held out of both: class-balanced with their own seed, or, for
    the "mpl" protocol, the first ones of the 5,000 that appendix C.1 reserves for validation.
    validation_fold = (index, folds) holds out that fold of the labeled examples instead
    (stratified, shuffled with ``fold_seed``): validation from the labels a user has, as
    `mentor compare` does. The pool is then shaped by ``unlabeled_fraction`` and
    ``class_mismatch`` (see shape_pool)."""
    validation = np.zeros(0, dtype=int)
    if validation_size < 0:
        raise DataError(f"validation size must be >= 0, got {validation_size}")
    if validation_size and validation_fold is not None:
        raise DataError("hold out either a validation size or a validation fold of the labels, not both")
    if num_labeled < 0:
        raise DataError(f"--num-labeled must be >= 0 (0: every labeled training example), got {num_labeled}")
    if protocol == "balanced":
        if validation_size:
            validation = balanced_labeled_indices(y_train, validation_size, num_classes, seed + 1_000_003,
                                                  what="--validation-size", names=class_names)
        if num_labeled == 0:  # the labels as given (a table's labeled rows): all of them, less validation
            labeled = np.setdiff1d(np.arange(len(y_train)), validation)
            missing = sorted(set(range(num_classes)) - set(np.asarray(y_train)[labeled].tolist()))
            if missing:
                raise DataError(f"{', '.join(class_name(c, class_names) for c in missing)}: no labeled training "
                                "example")
        else:
            labeled = balanced_labeled_indices(y_train, num_labeled, num_classes, seed, exclude=validation,
                                               names=class_names)
    elif protocol == "mpl":
        if validation_size > MPL_SKIP:
            raise DataError(f"the 'mpl' protocol reserves {MPL_SKIP} images for validation; "
                            f"asked for {validation_size}")
        validation = np.arange(validation_size)
        if num_labeled == 0:
            raise DataError("the 'mpl' split labels a number of images after the first 5,000: give --num-labeled N")
        labeled = mpl_labeled_indices(len(y_train), num_labeled, ordered)
    else:
        raise DataError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if validation_fold is not None:
        labeled, validation = fold_of_labeled(np.asarray(labeled), y_train, num_classes, tuple(validation_fold),
                                                fold_seed, class_names)
    n = len(y_train)
    if unlabeled_pool == "all":
        pool = np.arange(n)
    elif unlabeled_pool == "rest":
        pool = np.setdiff1d(np.arange(n), labeled)
    else:
        raise DataError(f"unknown unlabeled pool {unlabeled_pool!r}; choose 'all' or 'rest'")
    pool = np.setdiff1d(pool, validation)
    pool = np.concatenate([pool, n + np.arange(extra_unlabeled)])
    pool = shape_pool(pool, n, seed, unlabeled_fraction, class_mismatch)
    if len(pool) == 0:
        raise DataError(
            "the unlabeled set is empty: every training example is labeled and no extra "
            "unlabeled data was given; use --unlabeled-pool all or add x_unlabeled"
        )
    return Split(labeled.tolist(), pool.astype(int).tolist(), seed, protocol, validation.astype(int).tolist())


# --- labels from some classes only: the class-mismatch study of Oliver et al. 2018 (section 4.4) ---
# The labeled classes keep their training examples (relabelled 0..K-1, in the order given) and
# their test examples; the training examples of every other class lose their labels and become
# extra unlabeled data (x_unlabeled), which the split's pool draws from at the rate that
# class_mismatch asks for (shape_pool). The test split keeps the labeled classes only: a K-way
# classifier is scored on the K classes it can name.
def restrict_classes(ds: ArrayDataset, classes: Sequence[int]) -> ArrayDataset:
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"labeled classes {classes} name a class twice")
    if len(classes) < 2:
        raise DataError(f"labeled classes {classes}: a classifier needs at least 2")
    outside = [c for c in classes if not 0 <= c < ds.num_classes]
    if outside:
        raise DataError(f"labeled classes {outside} are not classes of {ds.name!r} (0..{ds.num_classes - 1})")
    if len(classes) == ds.num_classes:
        raise DataError(f"labeled classes {classes} are all of {ds.name!r}'s classes: none is left to be the "
                        "mismatched unlabeled data")
    if ds.x_unlabeled is not None and len(ds.x_unlabeled):
        raise DataError(f"dataset {ds.name!r} has {len(ds.x_unlabeled)} unlabeled examples of unknown class, so its "
                        "pool cannot be split into labeled classes and others: class mismatch needs a dataset whose "
                        "every training example has a class (digits, Fashion-MNIST, CIFAR-10, a fully labeled table)")
    code = np.full(ds.num_classes, -1, dtype=np.int64)
    code[classes] = np.arange(len(classes))
    inside, test_inside = code[ds.y_train] >= 0, code[ds.y_test] >= 0
    names = [ds.class_names[c] for c in classes] if ds.class_names is not None else [str(c) for c in classes]
    return replace(ds, x_train=ds.x_train[inside], y_train=code[ds.y_train[inside]],
                   x_test=ds.x_test[test_inside], y_test=code[ds.y_test[test_inside]], num_classes=len(classes),
                   x_unlabeled=ds.x_train[~inside], class_names=names, ordered=False, source_rows=None)
