"""Built-in models: an MLP for tables, a small CNN for images, a 1-D CNN and LSTM/GRU for
signals, and a sparse mixture-of-experts layer. Any ``nn.Module`` works with ``fit``."""

from trainground.models.build import MODELS, ModelConfig, build_model, build_multitask_model, model_from_spec
from trainground.models.heads import TaskHeads
from trainground.models.cnn import SmallCNN
from trainground.models.mlp import MLP
from trainground.models.moe import MoE, RoutingStats, WithAuxLoss, moe_aux_loss
from trainground.models.signal import SignalCNN, SignalRNN
from trainground.models.standardize import Standardize

__all__ = [
    "MLP", "MODELS", "ModelConfig", "MoE", "RoutingStats", "SignalCNN", "SignalRNN", "SmallCNN", "Standardize", "TaskHeads", "WithAuxLoss",
    "build_model", "build_multitask_model", "model_from_spec", "moe_aux_loss",
]
