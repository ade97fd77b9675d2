"""Model zoo, registered by name."""
from .cnn import CNN13, SmallCNN
from .efficientnet import EfficientNetLite0
from .factory import ModelFactory, create_model, input_normalization
from .mlp import MLP, ResidualMLP
from .wrn import WideResNet

__all__ = ["CNN13", "EfficientNetLite0", "MLP", "ModelFactory", "ResidualMLP", "SmallCNN", "WideResNet",
           "create_model", "input_normalization"]
