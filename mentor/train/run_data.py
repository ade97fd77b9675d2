"""A run's data: the dataset as its config names it (or as given in memory) and its split.

One function, so that the trainer, `mentor compare`'s classical baselines and anything else
that must see exactly the examples a run sees (labeled, held out, unlabeled) build them the
same way from a TrainConfig.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from ..data import ArrayDataset, Split, load_dataset, make_split, validate_dataset
from ..data.splits import restrict_classes
from ..data.splits import add_label_noise
from ..embedding import EmbeddedDataset, embed_dataset, split_options
from ..errors import ConfigError
from .config import TrainConfig


def is_streamed(dataset) -> bool:
    return bool(dataset.streamed)


def load_configured_dataset(config: TrainConfig, seed: Optional[int] = None):
    """The dataset ``config`` names, loaded with its options and, with ``embed=``, as cached
    embeddings (mentor.embedding): what ``prepare_data`` starts from, for callers that keep one
    loaded dataset for many runs (mentor compare's cells)."""
    embed, options = split_options(config.dataset_options)
    dataset = load_dataset(config.dataset, config.data_path, seed=config.seed if seed is None else seed, **options)
    if embed and not is_streamed(dataset):
        dataset = embed_dataset(dataset, embed, progress=config.progress)
    return dataset


def _advise_on_arrays(dataset: ArrayDataset, config: TrainConfig) -> None:
    """Arrays a user built in Python (a name no loader registers) meet two defaults made for the
    benchmarks: num_labeled labels a few of their examples, and features are taken as they are.
    Say so (once per message, Python's default for warnings), with the way out."""
    import warnings

    from ..registry import DATASETS

    if dataset.name in DATASETS:
        return
    n = len(dataset.y_train)
    if 0 < config.num_labeled < n:
        warnings.warn(f"num_labeled={config.num_labeled} labels {config.num_labeled} of the {n} training examples of "
                      f"{dataset.name!r} (the others join the unlabeled pool, as in the benchmarks); num_labeled=0 "
                      "trains on every label", stacklevel=3)
    if not dataset.is_image and dataset.cached_views is None and len(dataset.x_train) > 1:
        rows = dataset.x_train.reshape(len(dataset.x_train), -1)
        std, mean = rows.std(axis=0), np.abs(rows.mean(axis=0))
        if std.max() > 10 * max(std.min(), 1e-12) or (mean > 3 * np.maximum(std, 1e-12)).any():
            warnings.warn(f"the features of {dataset.name!r} are not standardised (column std from {std.min():.3g} to "
                          f"{std.max():.3g}): the noise of the strong views and the learning rate assume unit scale; "
                          "standardise them (SemiSupervisedClassifier and --dataset table do)", stacklevel=3)


def prepare_data(config: TrainConfig, dataset=None) -> Tuple[ArrayDataset, Split]:
    """(dataset, split): ``dataset`` overrides config.dataset (arrays built in Python, or a copy
    already loaded); labeled_classes, the validation fold, the pool's shape and label noise as
    the config says. Every draw is seeded by the config, so the same config gives the same split.
    A streamed dataset's pool is described, not listed (Split.streamed_pool)."""
    embed, options = split_options(config.dataset_options)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_path, seed=config.seed, **options)
    elif isinstance(dataset, ArrayDataset):
        dataset = validate_dataset(dataset)
        _advise_on_arrays(dataset, config)
    if embed and not isinstance(dataset, EmbeddedDataset):  # images -> cached embeddings of a pretrained backbone
        if is_streamed(dataset):
            raise ConfigError("embed= takes an in-memory image dataset; a dataset streamed from shards is not embedded")
        dataset = embed_dataset(dataset, embed, progress=config.progress)
    streamed = is_streamed(dataset)
    if streamed:
        unsupported = [name for name, value in (("labeled_classes", config.labeled_classes),
                                                ("class_mismatch", config.class_mismatch),
                                                ("unlabeled_fraction", config.unlabeled_fraction != 1.0)) if value]
        if unsupported:
            raise ConfigError(f"{', '.join(unsupported)} shape an in-memory pool; a pool streamed from shards is "
                              "taken whole (write the shards you want with `mentor shards`)")
    if config.labeled_classes is not None:
        dataset = restrict_classes(dataset, config.labeled_classes)
    extra = 0 if dataset.x_unlabeled is None else len(dataset.x_unlabeled)
    split = make_split(dataset.y_train, config.num_labeled, dataset.num_classes, config.resolved_split_seed,
                       config.unlabeled_pool, extra, protocol=config.split, ordered=dataset.ordered,
                       validation_size=config.validation_size, validation_fold=config.validation_fold,
                       fold_seed=config.seed, unlabeled_fraction=config.unlabeled_fraction,
                       class_mismatch=config.class_mismatch, class_names=dataset.class_names)
    if config.label_noise:
        add_label_noise(split, dataset.y_train, dataset.num_classes, config.label_noise, config.noise_kind,
                        config.resolved_split_seed)
    split.dataset_rows = dataset.source_rows
    if streamed:
        excluded = np.setdiff1d(np.arange(len(dataset.y_train)), split.unlabeled)
        pool = dataset.pool(excluded)
        split.unlabeled = []
        split.streamed_pool = {"size": pool.total, "excluded": excluded.astype(int).tolist(),
                               "fingerprint": pool.fingerprint()}
    return dataset, split
