"""Training loop, configuration and checkpoints; the names the user-facing modules build on (a run
folder's files, the settings a resume may change, a run's data as its config names it)."""
from .config import RESUME_FREE, TrainConfig
from .run_data import load_configured_dataset, prepare_data
from .run_folder import CHECKPOINT, INFERENCE, INPUTS
from .trainer import Trainer, evaluate, load_run, train

__all__ = ["CHECKPOINT", "INFERENCE", "INPUTS", "RESUME_FREE", "TrainConfig", "Trainer", "evaluate",
           "load_configured_dataset", "load_run", "prepare_data", "train"]
