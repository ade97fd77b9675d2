"""Model zoo, registered by name."""
from .mlp import MLP, create_model

__all__ = ["MLP", "create_model"]
