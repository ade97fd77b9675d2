"""Labels from a subset of the classes: the class-mismatch study of Oliver et al. 2018 (section 4.4).

The labeled classes keep their training examples (relabelled 0..K-1, in the order given) and
their test examples; the training examples of every other class lose their labels and become
extra unlabeled data (``x_unlabeled``), which the split's pool draws from at the rate that
``class_mismatch`` asks for (mentor.data.splits.shape_pool). The test split keeps the labeled
classes only: a K-way classifier is scored on the K classes it can name.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import DataError
from .arrays import ArrayDataset


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
