"""Model zoo, registered by name."""
from .cnn import CNN13, SmallCNN
from .mlp import MLP, ModelFactory, ResidualMLP, create_model
from .wrn import WideResNet

__all__ = ["CNN13", "MLP", "ModelFactory", "ResidualMLP", "SmallCNN", "WideResNet", "create_model"]
