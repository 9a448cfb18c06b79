"""Gradient noise scale from the micro-batch norms an accumulating loop already has."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def noise_scale_terms(small_sq: Tensor, big_sq: Tensor, small: float | Tensor, big: float | Tensor) -> tuple[Tensor, Tensor]:
    """Unbiased estimates of ``|G|^2`` and ``tr(Sigma)`` from two batch sizes.

    With ``|G_b|^2`` the squared norm of a mean gradient over ``b`` samples,
    ``E|G_b|^2 = |G|^2 + tr(Sigma) / b``; two sizes give two equations:
    ``|G|^2 = (B |G_B|^2 - b |G_b|^2) / (B - b)`` and ``tr(Sigma) = (|G_b|^2 - |G_B|^2) / (1/b - 1/B)``.

    Args:
        small_sq: ``|G_b|^2`` of one micro-batch of ``small`` samples (or the mean over the
            window's micro-batches: still unbiased, and K times less noisy).
        big_sq: ``|G_B|^2`` of the whole window of ``big`` samples (``big > small``).

    Returns:
        ``(|G|^2, tr(Sigma))`` estimates (each unbiased; their ratio is not, so average them first).

    References:
        McCandlish, Kaplan, Amodei et al. An Empirical Model of Large-Batch Training. 2018, App. A.
    """
    small = torch.as_tensor(small, dtype=torch.float64)
    big = torch.as_tensor(big, dtype=torch.float64)
    g2 = (big * big_sq.double() - small * small_sq.double()) / (big - small)
    trace = (small_sq.double() - big_sq.double()) / (1.0 / small - 1.0 / big)
    return g2, trace


class NoiseScale:
    """EMA of ``|G|^2`` and ``tr(Sigma)``; ``value`` is the simple noise scale ``B = tr(Sigma) / |G|^2``.

    ``B`` is the batch size at which the gradient noise equals the signal: training at batch
    sizes well below it wastes steps on noise, well above it wastes samples.

    Args:
        beta: EMA decay of the two terms (McCandlish et al. average them separately).
    """

    def __init__(self, beta: float = 0.95) -> None:
        self.beta = beta
        self.g2 = torch.zeros((), dtype=torch.float64)
        self.trace = torch.zeros((), dtype=torch.float64)
        self.weight = torch.zeros((), dtype=torch.float64)  # EMA weight sum, for bias correction

    def update(self, small_sq: Tensor, big_sq: Tensor, small: float | Tensor, big: float | Tensor) -> None:
        """Add one window's measurement (ignored when not finite)."""
        g2, trace = noise_scale_terms(small_sq, big_sq, small, big)
        if self.g2.device != g2.device:
            self.g2, self.trace, self.weight = self.g2.to(g2.device), self.trace.to(g2.device), self.weight.to(g2.device)
        ok = torch.isfinite(g2) & torch.isfinite(trace)
        b = self.beta
        self.g2 = torch.where(ok, b * self.g2 + (1 - b) * g2, self.g2)
        self.trace = torch.where(ok, b * self.trace + (1 - b) * trace, self.trace)
        self.weight = torch.where(ok, b * self.weight + (1 - b), self.weight)

    @property
    def value(self) -> Tensor:
        """``tr(Sigma) / |G|^2`` (NaN before the first measurement; inf when ``|G|^2 <= 0``)."""
        g2 = self.g2.clamp_min(0)
        return torch.where(self.weight > 0, self.trace / g2, torch.full_like(g2, float("nan")))

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "g2": self.g2.clone(), "trace": self.trace.clone(), "weight": self.weight.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])
        self.g2, self.trace, self.weight = state["g2"].clone(), state["trace"].clone(), state["weight"].clone()
