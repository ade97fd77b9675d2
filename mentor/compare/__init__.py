"""Does unlabeled data help on my data, and which method? See run.py for the protocol."""
from .output import format_tables
from .plan import DEFAULT_BASELINES, DEFAULT_METHODS
from .run import compare

__all__ = ["DEFAULT_BASELINES", "DEFAULT_METHODS", "compare", "format_tables"]
