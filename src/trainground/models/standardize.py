"""Input standardisation as a layer, so a saved model carries its own preprocessing."""

from __future__ import annotations

import math
from collections.abc import Iterable

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
        if isinstance(x, Tensor):
            mean = x.mean(dim=dims, keepdim=True).reshape(self.mean.shape)
            std = x.std(dim=dims, keepdim=True, unbiased=False).reshape(self.std.shape)
        else:  # a store decoded chunk by chunk (``data.image_files.ImageFiles``): never all at once
            mean, std = _chunked_moments(x.split(), dims)
            mean, std = mean.reshape(self.mean.shape).float(), std.reshape(self.std.shape).float()
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _chunked_moments(chunks: Iterable[Tensor], dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and (population) std over ``dims`` of the rows of all ``chunks`` together, in float64.

    Each chunk's own mean and squared deviations are merged with Chan et al.'s pairwise
    update, so no sum of squares of raw values loses the variance to cancellation.
    """
    count, mean, m2 = 0, None, None
    for chunk in chunks:
        part = chunk.double()
        n = part.numel() // math.prod(part.shape[d] for d in range(part.ndim) if d not in dims)
        part_mean = part.mean(dim=dims, keepdim=True)
        part_m2 = ((part - part_mean) ** 2).sum(dim=dims, keepdim=True)
        if mean is None or m2 is None:
            count, mean, m2 = n, part_mean, part_m2
            continue
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + part_m2 + delta**2 * (count * n / total)
        count = total
    if mean is None or m2 is None:
        raise ValueError("no rows to take statistics of")
    return mean, (m2 / count).sqrt()
