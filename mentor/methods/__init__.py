"""Semi-supervised methods, one file each, registered by name."""
from ..registry import METHODS
from . import (fixmatch, ict, mean_teacher, meta_pseudo_labels, noisy_student, pi_model, pseudo_label,  # noqa: F401,E501
               reduced_mpl, supervised, temporal_ensembling, uda, vat)
from .base import Method, StepOutput


def list_methods():
    return METHODS.names()


def create_method(name, model_factory, num_classes, seed=0, **hparams) -> Method:
    return METHODS.get(name).create(model_factory, num_classes, seed=seed, **hparams)


__all__ = ["Method", "StepOutput", "create_method", "list_methods"]
