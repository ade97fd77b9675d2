"""Augmentations and the views they make of a batch."""
from .images import OP_SETS, RandAugment, cutout, flip_and_translate, mixup, to_unit
from .noise import GaussianNoise
from .views import FeatureViews, ImageViews, channel_stats

__all__ = ["OP_SETS", "FeatureViews", "GaussianNoise", "ImageViews", "RandAugment", "channel_stats", "cutout",
           "flip_and_translate", "mixup", "to_unit"]
