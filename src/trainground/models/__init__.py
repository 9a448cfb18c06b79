"""Built-in models: an MLP for tables, a small CNN for images. Any ``nn.Module`` works with ``fit``."""

from trainground.models.build import MODELS, ModelConfig, build_model, model_from_spec
from trainground.models.cnn import SmallCNN
from trainground.models.mlp import MLP
from trainground.models.standardize import Standardize

__all__ = ["MLP", "MODELS", "ModelConfig", "SmallCNN", "Standardize", "build_model", "model_from_spec"]
