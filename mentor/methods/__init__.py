"""Semi-supervised methods, one file each, registered by name."""
from ..registry import METHODS
from . import (  # noqa: F401
    adamatch, comatch, crmatch, dash, defixmatch, distillation, divide_mix, fixmatch, flexmatch, freematch, ict,
    label_propagation, mean_teacher, meta_pseudo_labels, mixmatch, noisy_student, online_pseudo_label, pi_model,
    pseudo_label, reduced_mpl, refixmatch, remixmatch, sequencematch, simmatch, softmatch, supervised,
    temporal_ensembling, uda, vat)
from .base import Method, StepOutput


def list_methods():
    return METHODS.names()


def create_method(name, model_factory, num_classes, seed=0, **hparams) -> Method:
    return METHODS.get(name).create(model_factory, num_classes, seed=seed, **hparams)


__all__ = ["Method", "StepOutput", "create_method", "list_methods"]
