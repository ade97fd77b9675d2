"""Model zoo, registered by name."""
from .cnn import CNN13, SmallCNN
from .mlp import MLP, create_model
from .wrn import WideResNet

__all__ = ["CNN13", "MLP", "SmallCNN", "WideResNet", "create_model"]
