"""Regression metrics: mean absolute error and the coefficient of determination R^2."""

from __future__ import annotations

import torch
from torch import Tensor


def mean_absolute_error(prediction: Tensor, target: Tensor) -> Tensor:
    """``mean |y_hat - y|`` as a 0-d tensor."""
    return (prediction.reshape(target.shape).float() - target.float()).abs().mean()


def r2_score(prediction: Tensor, target: Tensor) -> Tensor:
    """``1 - SS_res / SS_tot``: 1 for a perfect fit, 0 for predicting the mean, negative when
    worse than the mean. NaN when the targets are all equal (R^2 is undefined there)."""
    y = target.float().flatten()
    residual = ((prediction.reshape(target.shape).float().flatten() - y) ** 2).sum()
    total = ((y - y.mean()) ** 2).sum()
    return torch.where(total > 0, 1 - residual / total.clamp_min(torch.finfo(y.dtype).tiny), torch.full_like(total, float("nan")))


class RegressionMetrics:
    """MAE, RMSE and R^2 accumulated over batches (sums kept on the device; no host sync
    until :meth:`compute`). R^2 uses the sums of ``y`` and ``y^2``, so it matches the
    whole-set formula exactly (in float64)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: Tensor | None = None  # [n, sum |r|, sum r^2, sum y, sum y^2]

    def update(self, prediction: Tensor, target: Tensor) -> None:
        y = target.double().flatten()
        r = prediction.reshape(target.shape).double().flatten() - y
        batch = torch.stack([torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
                             r.abs().sum(), (r * r).sum(), y.sum(), (y * y).sum()])
        self.sums = batch if self.sums is None else self.sums + batch

    def compute(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        n, abs_sum, sq_sum, y_sum, y_sq = self.sums.tolist()  # the one host sync
        total = y_sq - y_sum * y_sum / n
        return {"mae": abs_sum / n, "rmse": (sq_sum / n) ** 0.5,
                "r2": 1 - sq_sum / total if total > 0 else float("nan")}
