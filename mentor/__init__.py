"""mentor: semi-supervised learning with teacher-student methods."""
from . import data, methods, models, presets  # noqa: F401  (registers built-ins; mentor.presets after import mentor)
from .errors import CheckpointError, ConfigError, DataError, MentorError, TrainingError
from .methods import create_method, list_methods
from .estimator import SemiSupervisedClassifier
from .inference import export_model, load_export, load_model
from .train import TrainConfig, Trainer, train

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "MentorError", "TrainingError", "SemiSupervisedClassifier", "TrainConfig", "Trainer",
           "create_method", "export_model", "list_methods", "load_export", "load_model", "train", "__version__"]
