"""Where datasets come from, one registered loader each (mentor.registry.DATASETS): scikit-learn's
bundled sets and npz files (builtin), CIFAR, SVHN and (Fashion-)MNIST files (images), image
folders (folders), CSV and Parquet tables (tables), sentences (text)."""
from . import builtin, folders, images, tables, text  # noqa: F401  (registers the loaders)
from .builtin import load_dataset, load_npz

__all__ = ["load_dataset", "load_npz"]
