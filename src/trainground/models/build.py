"""Choose and build a model from the shape of the data, and rebuild it from its spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from torch import Tensor, nn

from trainground.bounds import AT_LEAST_ONE, FRACTION
from trainground.errors import ConfigError
from trainground.models.cnn import SmallCNN
from trainground.models.mlp import MLP


@dataclass
class ModelConfig:
    """Which built-in model to train; ignored when you pass your own ``nn.Module``."""

    # "auto": an MLP for tables ([N, F] features), a CNN for images ([N, C, H, W]).
    name: Literal["auto", "mlp", "cnn"] = "auto"
    # MLP hidden widths; two layers of 256 is the benchmark recipe and fits most small tables.
    hidden: tuple[Annotated[int, AT_LEAST_ONE], ...] = (256, 256)
    # CNN channels per stage; each stage halves the image side.
    channels: tuple[Annotated[int, AT_LEAST_ONE], ...] = (32, 64)
    # Dropout after hidden layers (MLP) or before the head (CNN); 0 keeps training deterministic-simple.
    dropout: Annotated[float, FRACTION] = 0.0


def build_model(
    config: ModelConfig, *, input_shape: tuple[int, ...], num_classes: int, train_features: Tensor | None = None
) -> nn.Module:
    """A fresh model for samples of ``input_shape`` (one sample, no batch dimension).

    Args:
        config: which model and its sizes.
        input_shape: ``(F,)`` for tables, ``(C, H, W)`` for images.
        num_classes: number of logits.
        train_features: training inputs whose statistics the model's input
            standardisation takes (never the validation or test inputs).
    """
    name = config.name
    if name == "auto":
        name = "mlp" if len(input_shape) == 1 else "cnn"
    if name == "mlp":
        if len(input_shape) != 1:
            raise ConfigError(f"model 'mlp' needs flat features, the data has samples of shape {input_shape}")
        model: nn.Module = MLP(input_shape[0], num_classes, hidden=config.hidden, dropout=config.dropout)
    elif name == "cnn":
        if len(input_shape) != 3:
            raise ConfigError(f"model 'cnn' needs images [C, H, W], the data has samples of shape {input_shape}")
        model = SmallCNN(
            input_shape[0], num_classes, image_size=input_shape[1:], channels=config.channels, dropout=config.dropout
        )
    else:
        raise ConfigError(f"unknown model {name!r}; known: auto, {', '.join(MODELS)}")
    if train_features is not None:
        model.fit_input_stats(train_features)
    return model


def _mlp_from_spec(spec: dict[str, Any]) -> nn.Module:
    return MLP(spec["in_features"], spec["num_classes"], hidden=tuple(spec["hidden"]), dropout=spec["dropout"])


def _cnn_from_spec(spec: dict[str, Any]) -> nn.Module:
    return SmallCNN(
        spec["in_channels"],
        spec["num_classes"],
        image_size=tuple(spec["image_size"]),
        channels=tuple(spec["channels"]),
        dropout=spec["dropout"],
    )


MODELS = {"mlp": _mlp_from_spec, "cnn": _cnn_from_spec}


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture described by ``model.spec()`` (weights are loaded separately)."""
    try:
        return MODELS[spec["name"]](spec)
    except KeyError as err:
        raise ConfigError(f"cannot rebuild model from spec {spec!r}: missing or unknown {err}") from None
