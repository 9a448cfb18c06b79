"""Regression losses: mean squared error and Huber, on ``[N]`` or ``[N, 1]`` predictions."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from trainground.errors import ConfigError

Reduction = Literal["mean", "sum", "none"]


def _align(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """A ``[N, 1]`` head against ``[N]`` targets: flattened to the target's shape, float."""
    if prediction.numel() != target.numel():
        raise ConfigError(f"regression loss: prediction {tuple(prediction.shape)} and target "
                          f"{tuple(target.shape)} hold different numbers of values")
    return prediction.reshape(target.shape).float(), target.float()


def mse_loss(prediction: Tensor, target: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """Mean squared error ``(y_hat - y)^2``."""
    return F.mse_loss(*_align(prediction, target), reduction=reduction)


def huber_loss(prediction: Tensor, target: Tensor, *, delta: float = 1.0, reduction: Reduction = "mean") -> Tensor:
    """Huber loss: ``r^2 / 2`` for ``|r| <= delta``, ``delta * (|r| - delta / 2)`` beyond, so a
    few outlying targets pull with a bounded gradient (at most ``delta``) instead of ``r``.

    References:
        Huber. "Robust Estimation of a Location Parameter." Ann. Math. Statist. 35(1), 1964.
    """
    if delta <= 0:
        raise ConfigError(f"huber_loss: delta must be > 0, got {delta}")
    return F.huber_loss(*_align(prediction, target), delta=delta, reduction=reduction)


class RegressionLoss(nn.Module):
    """``mse`` or ``huber`` as a module (a task loss of ``MultiTaskLoss``).

    Args:
        kind: ``"mse"`` or ``"huber"``.
        delta: Huber's threshold (in the target's units; 1.0 for standardised targets).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample losses).
    """

    def __init__(self, kind: Literal["mse", "huber"] = "mse", *, delta: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        if kind not in ("mse", "huber"):
            raise ConfigError(f"unknown regression loss {kind!r}; known: mse, huber")
        if delta <= 0:
            raise ConfigError(f"RegressionLoss: delta must be > 0, got {delta}")
        self.kind, self.delta, self.reduction = kind, float(delta), reduction

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        if self.kind == "huber":
            return huber_loss(prediction, target, delta=self.delta, reduction=self.reduction)
        return mse_loss(prediction, target, reduction=self.reduction)
