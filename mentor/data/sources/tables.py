"""Tables: a CSV (or Parquet) file of numeric feature columns and one target column whose empty
cells (or a chosen marker) mark the unlabeled rows.

    mentor train --dataset table --data-path rows.csv --target species [--test-path test.csv]

Every column other than the target is a feature and must be numeric in every row (no
imputation: a missing or non-numeric cell is an error naming its column and line). Class
labels may be any strings or numbers; they are sorted (numerically when every label is a
number) and kept as the run's class names, so predictions come back in the table's own terms.
The test split is the --test-path table, or a seeded stratified share (``test_fraction``) of
the labeled rows; which table rows went where is saved with the run (split.json,
``dataset_rows``). Features are standardised with the mean and std of the training and
unlabeled rows (never the test rows); the run keeps that scaling, so `mentor predict` and
`mentor.load_model` take raw rows. Written with the standard library's csv module; Parquet
needs pyarrow (``pip install pyarrow``).
"""
from __future__ import annotations

import csv
import os
from typing import List, Optional, Tuple

import numpy as np

from ...errors import DataError
from ...registry import DATASETS
from ..arrays import ArrayDataset
from ..splits import TEST_FRACTION, stratified_hold_out


def read_table(path: str) -> Tuple[List[str], List[List[str]]]:
    """(header, rows of cells as strings) of a .csv / .tsv or .parquet file."""
    if not path:
        raise DataError("dataset 'table' needs --data-path pointing to a .csv or .parquet file")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder: a table is one .csv, .tsv or .parquet file (a folder of images is "
                        "--dataset image_folder)")
    if not os.path.isfile(path):
        raise DataError(f"table file not found: {path}")
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or save the table as CSV") from None
        table = pq.read_table(path)
        columns = [["" if v is None else str(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
        header = list(table.column_names)
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise DataError(f"{path}: the columns {', '.join(map(repr, twice))} appear more than once; each needs "
                            "its own name")
        return header, [list(row) for row in zip(*columns)]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is no part of a name
            sample = f.read(65536)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = list(csv.reader(f, dialect))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                        "save it as UTF-8 CSV") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path} is empty: expected a header line and rows")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DataError(f"{path}: the header names {', '.join(map(repr, twice))} more than once; columns are read by "
                        "name, so each needs its own")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} cells, but the header has {len(header)} columns")
    return header, body


def _target_index(header: List[str], target: Optional[str], path: str) -> int:
    if not target:
        raise DataError(f"dataset 'table' needs --target COLUMN, the column of class labels; {path} has "
                        f"columns {', '.join(header)}")
    if target not in header:
        raise DataError(f"{path} has no column {target!r}; its columns: {', '.join(header)}")
    return header.index(target)


def parse_features(header: List[str], rows: List[List[str]], skip: int, path: str) -> np.ndarray:
    """float32 (n, columns) from the cells of every column but ``skip``; errors name column and line."""
    columns = [i for i in range(len(header)) if i != skip]
    out = np.empty((len(rows), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        for r, row in enumerate(rows):
            cell = row[col].strip()
            try:
                out[r, j] = float(cell)
            except ValueError:
                what = "is empty (no imputation: fill or drop it)" if not cell else f"holds {cell!r}, not a number"
                raise DataError(f"{path}, line {r + 2}: column {header[col]!r} {what}; every column but the "
                                "target must be numeric") from None
    if not np.isfinite(out).all():
        r, j = np.argwhere(~np.isfinite(out))[0]
        raise DataError(f"{path}, line {r + 2}: column {header[columns[j]]!r} is not finite")
    return out


def column_scaling(x: np.ndarray):
    """(mean, std) of each column, computed without overflow: each column is divided by its
    largest magnitude first, so values up to float64's limit (1e308) standardise exactly; a
    constant column gets std 1."""
    magnitude = np.abs(x).max(axis=0) if len(x) else np.ones(x.shape[1])
    magnitude[~(magnitude > 0)] = 1.0
    scaled = x / magnitude
    mean, std = scaled.mean(axis=0) * magnitude, scaled.std(axis=0) * magnitude
    std[~(std > 0)] = 1.0
    return mean, std


def _class_order(labels: List[str]) -> List[str]:
    names = sorted(set(labels))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


class LabelColumn:
    """The labels of a file of rows (a table's target column, a text file's first field): which
    rows are labeled (a non-empty cell other than the marker), the class names in order, and
    each row's class index (-1 where unlabeled). Errors name the file."""

    def __init__(self, cells: List[str], marker: str, path: str, what: str):
        self.path, self.cells = path, cells
        self.labeled = np.array([i for i, c in enumerate(cells) if c and c != marker], dtype=int)
        self.unlabeled = np.array([i for i, c in enumerate(cells) if not c or c == marker], dtype=int)
        if not len(self.labeled):
            raise DataError(f"{path}: no row has a label in {what} (empty cells"
                            f"{f' and {marker!r}' if marker else ''} mark unlabeled rows)")
        self.class_names = _class_order([cells[i] for i in self.labeled])
        if len(self.class_names) < 2:
            raise DataError(f"{path}: the labeled rows hold one class only ({self.class_names[0]!r}); a classifier "
                            "needs two")
        self.index = {name: k for k, name in enumerate(self.class_names)}
        self.y = np.array([self.index.get(c, -1) for c in cells], dtype=np.int64)
        counts = np.bincount(self.y[self.labeled], minlength=len(self.class_names))
        lonely = [self.class_names[k] for k in np.flatnonzero(counts < 2)]
        if lonely:
            raise DataError(f"{path}: class(es) {', '.join(map(repr, lonely))} have a single labeled row; give each "
                            "class at least two (one to learn from, one to test on)")

    def encode_test(self, cells: List[str], test_path: str) -> np.ndarray:
        unknown = sorted({c for c in cells if c not in self.index})
        if unknown:
            raise DataError(f"{test_path}: labels {unknown[:5]} are not among the training file's classes "
                            f"{self.class_names} (every test row needs a known label)")
        return np.array([self.index[c] for c in cells], dtype=np.int64)

    def hold_out(self, test_fraction: float, seed: int):
        """(train rows, test rows): a seeded stratified share of the labeled rows for testing."""
        train, test = stratified_hold_out(self.y[self.labeled], test_fraction, seed, f"{self.path}: labeled rows",
                                          "give --test-path or more labeled rows", class_names=self.class_names)
        return self.labeled[train], self.labeled[test]


def rows_dataset(name: str, x: np.ndarray, labels: LabelColumn, path: str, seed: int, test_fraction: float,
                 standardize: bool, test=None, test_path: Optional[str] = None, **extra) -> ArrayDataset:
    """The dataset of a file of rows (a table, sentences): ``test`` = (x, y) of a given test file,
    else a seeded stratified share of the labeled rows; features standardised with the mean and
    std of the training and unlabeled rows (never the test rows), the scaling and which rows
    went where kept with it."""
    if test is not None:
        (x_test, y_test), train_rows, test_rows = test, labels.labeled, np.zeros(0, dtype=int)
    else:
        train_rows, test_rows = labels.hold_out(test_fraction, seed)
        x_test, y_test = x[test_rows], labels.y[test_rows]
    mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    if standardize:
        mean, std = column_scaling(x[np.concatenate([train_rows, labels.unlabeled])])

    def scale(a):
        return ((a - mean) / std).astype(np.float32)

    return ArrayDataset(
        name=name, x_train=scale(x[train_rows]), y_train=labels.y[train_rows], x_test=scale(x_test), y_test=y_test,
        num_classes=len(labels.class_names), x_unlabeled=scale(x[labels.unlabeled]), class_names=labels.class_names,
        feature_scaling={"mean": mean.tolist(), "std": std.tolist()},
        source_rows={"file": os.path.abspath(path), "train": train_rows.tolist(), "test": test_rows.tolist(),
                     "unlabeled": labels.unlabeled.tolist(), "test_file": os.path.abspath(test_path) if test_path else None,
                     "test_fraction": None if test is not None else test_fraction},
        **extra)


@DATASETS.register("table")
def load_table(path: Optional[str], seed: int = 0, target: Optional[str] = None, test_path: Optional[str] = None,
               test_fraction: float = TEST_FRACTION, unlabeled_marker: str = "", standardize: bool = True) -> ArrayDataset:
    header, rows = read_table(path)
    t = _target_index(header, target, path)
    feature_columns = [h for i, h in enumerate(header) if i != t]
    if not feature_columns:
        raise DataError(f"{path} has no feature column besides the target {target!r}")
    x = parse_features(header, rows, t, path)
    labels = LabelColumn([row[t].strip() for row in rows], str(unlabeled_marker).strip(), path, f"column {target!r}")
    test = None
    if test_path:
        test_header, test_body = read_table(test_path)
        if test_header != header:
            raise DataError(f"{test_path} has columns {', '.join(test_header)}; {path} has {', '.join(header)}")
        test = (parse_features(header, test_body, t, test_path),
                labels.encode_test([row[t].strip() for row in test_body], test_path))
    return rows_dataset("table", x, labels, path, seed, test_fraction, standardize, test, test_path,
                        feature_columns=feature_columns)
