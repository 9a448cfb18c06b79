"""Models for signals: a 1-D CNN and a small LSTM/GRU over frames of the signal.

Both take ``[N, L]`` (a table whose features are one signal's samples in order, as
``builtin:mnist1d`` and ``builtin:faults``) or ``[N, C, L]`` (C channels).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from trainground.models.standardize import Standardize


def _as_channels(x: Tensor, in_channels: int) -> Tensor:
    return x.unsqueeze(1) if x.ndim == 2 and in_channels == 1 else x


class SignalCNN(nn.Module):
    """Standardize -> [Conv1d(k) -> BatchNorm -> ReLU -> MaxPool2] per stage -> pool -> Linear.

    The head sees ``pool_bins`` average-pooled segments of the last feature map (plus its
    global maximum): a few bins keep coarse position (which matters for MNIST-1D's
    templates) while the global maximum catches a pattern wherever it occurs (a
    bearing strike). Standardisation is one scalar per channel: a signal's samples share
    units, so per-position statistics would only add noise.

    Args:
        in_channels: signal channels (1 for ``[N, L]`` input).
        num_classes: number of output logits.
        length: samples per signal (pooling stops once the map is 2 samples long).
        channels: output channels of each stage.
        kernel_size: odd convolution width.
        pool_bins: segments the head averages over.
        dropout: dropout before the head (0 disables it).
        per_signal: also scale each signal by its own standard deviation (after the dataset
            standardisation): the model becomes blind to the sensor's gain, and to absolute
            amplitude with it (use it when gains differ between sites, not when amplitude
            carries the label).
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, length: int, channels: tuple[int, ...] = (32, 64, 64),
        kernel_size: int = 5, pool_bins: int = 4, dropout: float = 0.0, per_signal: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
        self.in_channels, self.num_classes, self.length = in_channels, num_classes, length
        self.channels, self.kernel_size, self.pool_bins, self.dropout = tuple(channels), kernel_size, pool_bins, dropout
        self.per_signal = per_signal
        self.normalize = Standardize((in_channels, 1))
        layers: list[nn.Module] = []
        width, side = in_channels, length
        for c in self.channels:
            layers += [nn.Conv1d(width, c, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm1d(c),
                       nn.ReLU()]
            if side >= 4:
                layers.append(nn.MaxPool1d(2))
                side //= 2
            width = c
        self.body = nn.Sequential(*layers)
        self.bins = nn.AdaptiveAvgPool1d(min(pool_bins, side))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(width * (min(pool_bins, side) + 1), num_classes)

    def embed(self, x: Tensor) -> Tensor:
        x = self.normalize(_as_channels(x, self.in_channels))
        if self.per_signal:
            x = x / x.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        h = self.body(x)
        return self.drop(torch.cat([self.bins(h).flatten(1), h.amax(dim=2)], dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    def fit_input_stats(self, x: Tensor) -> SignalCNN:
        """Standardise each channel with one mean and std over the training signals ``x``."""
        x = _as_channels(x, self.in_channels)
        self.normalize.fit(x, dims=(0, 2))
        return self

    def spec(self) -> dict[str, Any]:
        return {
            "name": "cnn1d", "in_channels": self.in_channels, "num_classes": self.num_classes, "length": self.length,
            "channels": list(self.channels), "kernel_size": self.kernel_size, "pool_bins": self.pool_bins,
            "dropout": self.dropout, "per_signal": self.per_signal,
        }


class SignalRNN(nn.Module):
    """Standardize -> frames of ``frame`` samples -> LSTM or GRU -> last hidden state -> Linear.

    A raw 1024-sample signal is too long a sequence for a small recurrent net (slow on a
    CPU, and gradients through 1024 steps vanish or explode); cutting it into frames (as
    speech models do) gives ``L / frame`` steps of ``frame * C`` features each.

    Args:
        in_channels: signal channels (1 for ``[N, L]`` input).
        num_classes: number of output logits.
        length: samples per signal (zero-padded up to a multiple of ``frame``).
        cell: ``"lstm"`` or ``"gru"``.
        hidden: hidden units per layer.
        layers: stacked recurrent layers.
        frame: samples per time step.
        dropout: dropout before the head (0 disables it).
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, length: int, cell: Literal["lstm", "gru"] = "lstm",
        hidden: int = 64, layers: int = 1, frame: int = 1, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.length = in_channels, num_classes, length
        self.cell, self.hidden, self.layers, self.frame, self.dropout = cell, hidden, layers, frame, dropout
        self.normalize = Standardize((in_channels, 1))
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(in_channels * frame, hidden, num_layers=layers, batch_first=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        x = self.normalize(_as_channels(x, self.in_channels))
        pad = -x.shape[2] % self.frame
        if pad:
            x = nn.functional.pad(x, (0, pad))
        n, c, length = x.shape
        steps = x.reshape(n, c, length // self.frame, self.frame).permute(0, 2, 1, 3).reshape(n, -1, c * self.frame)
        out, _ = self.rnn(steps)
        return self.drop(out[:, -1])

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    def fit_input_stats(self, x: Tensor) -> SignalRNN:
        """Standardise each channel with one mean and std over the training signals ``x``."""
        self.normalize.fit(_as_channels(x, self.in_channels), dims=(0, 2))
        return self

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.cell, "in_channels": self.in_channels, "num_classes": self.num_classes, "length": self.length,
            "hidden": self.hidden, "layers": self.layers, "frame": self.frame, "dropout": self.dropout,
        }


def default_frame(length: int, max_steps: int = 64) -> int:
    """Samples per recurrent step so that a signal of ``length`` takes at most ``max_steps`` steps."""
    return max(1, -(-length // max_steps))
