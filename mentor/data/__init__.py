"""Datasets, splits and batch streams."""
from . import folders, images, sharded, sources, tables, text  # noqa: F401  (register the built-in datasets)
from .arrays import ArrayDataset, validate_dataset
from .sources import load_dataset
from .splits import Split, make_split
from .streams import Batch, SemiSupervisedStream

__all__ = ["ArrayDataset", "Batch", "SemiSupervisedStream", "Split", "load_dataset", "make_split",
           "validate_dataset"]
