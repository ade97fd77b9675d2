"""A run's data: the dataset as its config names it (or as given in memory) and its split.

One function, so that the trainer, `mentor compare`'s classical baselines and anything else
that must see exactly the examples a run sees (labeled, held out, unlabeled) build them the
same way from a TrainConfig.
"""
from __future__ import annotations

from typing import Optional, Tuple

from ..data import ArrayDataset, Split, load_dataset, make_split, validate_dataset
from ..data.classes import restrict_classes
from ..data.splits import add_label_noise
from .config import TrainConfig


def prepare_data(config: TrainConfig, dataset: Optional[ArrayDataset] = None) -> Tuple[ArrayDataset, Split]:
    """(dataset, split): ``dataset`` overrides config.dataset (arrays built in Python, or a copy
    already loaded); labeled_classes, the validation fold, the pool's shape and label noise as
    the config says. Every draw is seeded by the config, so the same config gives the same split."""
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_path, seed=config.seed, **config.dataset_options)
    else:
        dataset = validate_dataset(dataset)
    if config.labeled_classes is not None:
        dataset = restrict_classes(dataset, config.labeled_classes)
    extra = 0 if dataset.x_unlabeled is None else len(dataset.x_unlabeled)
    split = make_split(dataset.y_train, config.num_labeled, dataset.num_classes, config.resolved_split_seed,
                       config.unlabeled_pool, extra, protocol=config.split, ordered=dataset.ordered,
                       validation_size=config.validation_size, validation_fold=config.validation_fold,
                       fold_seed=config.seed, unlabeled_fraction=config.unlabeled_fraction,
                       class_mismatch=config.class_mismatch)
    if config.label_noise:
        add_label_noise(split, dataset.y_train, dataset.num_classes, config.label_noise, config.noise_kind,
                        config.resolved_split_seed)
    split.dataset_rows = dataset.source_rows
    return dataset, split
