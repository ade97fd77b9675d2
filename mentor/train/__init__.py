"""Training loop, configuration and checkpoints."""
from .config import TrainConfig
from .trainer import Trainer, evaluate, load_run, train

__all__ = ["TrainConfig", "Trainer", "evaluate", "load_run", "train"]
