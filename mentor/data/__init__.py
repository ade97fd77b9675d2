"""Datasets, splits and batch streams: the interface every source gives (base), arrays in memory
(arrays), where datasets come from (sources/), WebDataset shards (shards/), splits, pools held in
memory and the stream of batches."""
from . import shards, sources  # noqa: F401  (registers the built-in datasets)
from .arrays import ArrayDataset, validate_dataset
from .sources import load_dataset
from .splits import Split, make_split
from .streams import Batch, SemiSupervisedStream

__all__ = ["ArrayDataset", "Batch", "SemiSupervisedStream", "Split", "load_dataset", "make_split",
           "validate_dataset"]
