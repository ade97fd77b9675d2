"""mentor: semi-supervised learning with teacher-student methods."""
from . import data, methods, models  # noqa: F401  (registers built-ins)
from .errors import CheckpointError, ConfigError, DataError, MentorError
from .methods import create_method, list_methods
from .train import TrainConfig, Trainer, train

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "MentorError", "TrainConfig", "Trainer",
           "create_method", "list_methods", "train", "__version__"]
