"""Choose and build a model from the shape of the data, and rebuild it from its spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from torch import Tensor, nn

from trainground.bounds import AT_LEAST_ONE, FRACTION, NON_NEGATIVE
from trainground.errors import ConfigError
from trainground.models.cnn import SmallCNN
from trainground.models.heads import TaskHeads
from trainground.models.mlp import MLP
from trainground.models.signal import SignalCNN, SignalRNN, default_frame


@dataclass
class ModelConfig:
    """Which built-in model to train; ignored when you pass your own ``nn.Module``."""

    # "auto": an MLP for tables ([N, F] features), a CNN for images ([N, C, H, W]), the
    # 1-D CNN for signals (data of kind "signal": builtin:mnist1d, builtin:faults).
    # "lstm"/"gru": a small recurrent net over frames of a signal.
    name: Literal["auto", "mlp", "cnn", "cnn1d", "lstm", "gru"] = "auto"
    # MLP hidden widths; two layers of 256 is the benchmark recipe and fits most small tables.
    hidden: tuple[Annotated[int, AT_LEAST_ONE], ...] = (256, 256)
    # CNN channels per stage; each stage halves the image side.
    channels: tuple[Annotated[int, AT_LEAST_ONE], ...] = (32, 64)
    # 1-D CNN channels per stage; each stage halves the signal (a unit of the fourth stage sees
    # about 100 samples: a turn of a 40 Hz shaft at 4096 Hz).
    conv1d_channels: tuple[Annotated[int, AT_LEAST_ONE], ...] = (32, 32, 64, 64)
    # 1-D CNN kernel width (odd): 7 samples hold about two periods of builtin:faults' housing resonance
    # (1-1.6 kHz at 4096 Hz) in the first layer.
    kernel_size: Annotated[int, AT_LEAST_ONE] = 7
    # 1-D CNN: divide each signal by its own standard deviation too (blind to sensor gain and to
    # absolute amplitude); off: amplitude is often the label (fault severity).
    per_signal: bool = False
    # LSTM/GRU hidden units and stacked layers; small, as the signals are short.
    rnn_hidden: Annotated[int, AT_LEAST_ONE] = 64
    rnn_layers: Annotated[int, AT_LEAST_ONE] = 1
    # Samples per recurrent step; 0 = as many as keep the sequence at most 64 steps long.
    frame: Annotated[int, NON_NEGATIVE] = 0
    # Dropout after hidden layers (MLP) or before the head (CNN); 0 keeps training deterministic-simple.
    dropout: Annotated[float, FRACTION] = 0.0


def build_model(
    config: ModelConfig, *, input_shape: tuple[int, ...], num_classes: int, train_features: Tensor | None = None,
    kind: str | None = None,
) -> nn.Module:
    """A fresh model for samples of ``input_shape`` (one sample, no batch dimension).

    Args:
        config: which model and its sizes.
        input_shape: ``(F,)`` for tables and signals, ``(C, L)`` for multi-channel signals,
            ``(C, H, W)`` for images.
        num_classes: number of logits.
        train_features: training inputs whose statistics the model's input
            standardisation takes (never the validation or test inputs).
        kind: the dataset's kind (``IndexedDataset.kind``); ``"signal"`` makes "auto" the 1-D CNN.
    """
    name = config.name
    if name == "auto":
        name = "cnn1d" if kind == "signal" or len(input_shape) == 2 else "mlp" if len(input_shape) == 1 else "cnn"
    if name in ("cnn1d", "lstm", "gru"):
        model = _signal_model(config, name, input_shape, num_classes)
        if train_features is not None:
            model.fit_input_stats(train_features)
        return model
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


def _signal_model(config: ModelConfig, name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) not in (1, 2):
        raise ConfigError(f"model {name!r} needs signals [L] or [C, L], the data has samples of shape {input_shape}")
    channels, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
    if name == "cnn1d" and config.kernel_size % 2 == 0:
        raise ConfigError(f"model.kernel_size must be odd (same padding), got {config.kernel_size}")
    if name == "cnn1d":
        return SignalCNN(channels, num_classes, length=length, channels=config.conv1d_channels,
                         kernel_size=config.kernel_size, dropout=config.dropout, per_signal=config.per_signal)
    return SignalRNN(channels, num_classes, length=length, cell=name, hidden=config.rnn_hidden,  # type: ignore[arg-type]
                     layers=config.rnn_layers, frame=config.frame or default_frame(length), dropout=config.dropout)


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


def _cnn1d_from_spec(spec: dict[str, Any]) -> nn.Module:
    return SignalCNN(spec["in_channels"], spec["num_classes"], length=spec["length"], channels=tuple(spec["channels"]),
                     kernel_size=spec["kernel_size"], pool_bins=spec["pool_bins"], dropout=spec["dropout"],
                     per_signal=spec.get("per_signal", False))


def _rnn_from_spec(spec: dict[str, Any]) -> nn.Module:
    return SignalRNN(spec["in_channels"], spec["num_classes"], length=spec["length"], cell=spec["name"],
                     hidden=spec["hidden"], layers=spec["layers"], frame=spec["frame"], dropout=spec["dropout"])


def _heads_from_spec(spec: dict[str, Any]) -> nn.Module:
    return TaskHeads(model_from_spec(spec["trunk"]), spec["widths"], spec.get("scales"))


MODELS = {"mlp": _mlp_from_spec, "cnn": _cnn_from_spec, "cnn1d": _cnn1d_from_spec, "lstm": _rnn_from_spec,
          "gru": _rnn_from_spec, "task_heads": _heads_from_spec}


def build_multitask_model(
    config: ModelConfig, *, input_shape: tuple[int, ...], widths: dict[str, int], train_features: Tensor | None = None,
    kind: str | None = None, scales: dict[str, tuple[float, float]] | None = None,
) -> TaskHeads:
    """The model ``build_model`` would choose, with one output head per task (``{task: width}``):
    a shared trunk and :class:`TaskHeads` returning ``{task: output}`` (``scales``: standardised
    regression targets, answered in their original units)."""
    trunk = build_model(config, input_shape=input_shape, num_classes=sum(widths.values()),
                        train_features=train_features, kind=kind)
    return TaskHeads(trunk, widths, scales)


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture described by ``model.spec()`` (weights are loaded separately)."""
    try:
        return MODELS[spec["name"]](spec)
    except KeyError as err:
        raise ConfigError(f"cannot rebuild model from spec {spec!r}: missing or unknown {err}") from None
