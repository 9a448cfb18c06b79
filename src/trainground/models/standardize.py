"""Input standardisation as a layer, so a saved model carries its own preprocessing."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics stored as buffers (saved with the weights).

    Args:
        shape: shape of one statistic, broadcast against a batch (``(F,)`` for tables,
            ``(C, 1, 1)`` for images).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, x: Tensor, dims: tuple[int, ...]) -> Standardize:
        """Set the statistics from training inputs ``x``, reducing over ``dims``.

        Constant features get std 1 (not 0): they carry no information, and dividing
        by ~0 would turn rounding noise into huge inputs.
        """
        mean = x.mean(dim=dims, keepdim=True).reshape(self.mean.shape)
        std = x.std(dim=dims, keepdim=True, unbiased=False).reshape(self.std.shape)
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
