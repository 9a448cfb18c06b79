"""Percentile clip (AutoClip): clip the global norm at the p-th percentile of its own history."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, global_norm


def percentile_threshold(history: Tensor, percentile: float, filled: int) -> Tensor:
    """The nearest-rank ``percentile``-th percentile (0-100) of the first ``filled`` slots of ``history``.

    Empty (NaN) slots count as ``+inf``, so they sit above every real norm. ``filled`` is a host
    integer (the Guard counts its steps), so one ``kthvalue`` kernel answers: no sort of the whole
    buffer, no host sync. Returns ``inf`` while nothing is recorded.
    """
    n = min(int(filled), history.numel())
    if n == 0:
        return torch.full((), float("inf"), device=history.device)
    k = max(1, math.ceil(percentile / 100.0 * n))
    window = history[:n]
    return torch.kthvalue(torch.where(torch.isnan(window), float("inf"), window), k).values


def record_norm_(history: Tensor, count: Tensor, norm: Tensor) -> None:
    """Write ``norm`` into the ring buffer ``history`` at ``count % len`` and advance ``count``,
    only when ``norm`` is finite: a NaN or inf norm never enters the history."""
    finite = torch.isfinite(norm)
    pos = (count % history.numel()).reshape(1)
    old = history.index_select(0, pos)
    history.index_copy_(0, pos, torch.where(finite, norm.to(history.dtype), old))
    count.add_(finite.to(count.dtype))


def percentile_clip_(
    grads: Iterable[Tensor], history: Tensor, count: Tensor, *, percentile: float = 10.0
) -> Tensor:
    """Record the global norm of ``grads`` in ``history``, then clip ``grads`` at the history's percentile.

    Args:
        grads: gradient tensors, modified in place.
        history: ring buffer of past norms (NaN = empty slot), updated in place.
        count: number of finite norms recorded so far (0-dim int64 tensor), updated in place.
        percentile: which percentile of the history is the threshold (AutoClip's p, 0-100).

    Returns:
        The threshold used (0-dim tensor).

    References:
        Seetharaman, Wichern, Pardo, Le Roux. AutoClip: Adaptive Gradient Clipping for
        Source Separation Networks. MLSP 2020.
    """
    grads = [g for g in grads if g is not None]
    norm = global_norm(grads)
    record_norm_(history, count, norm)
    threshold = percentile_threshold(history, percentile, int(count))  # the functional form may sync
    factor = torch.clamp(threshold / (norm + 1e-12), max=1.0)
    torch._foreach_mul_(grads, torch.where(torch.isfinite(factor), factor, 1.0))
    return threshold


class PercentileClip:
    """AutoClip: the threshold is the ``percentile``-th percentile of the last ``history`` global norms.

    Memory is bounded (a ring buffer of ``history`` floats). The current norm is recorded
    before the threshold is taken, as in the paper, so the first step is never clipped.
    The percentile is the nearest-rank one (AutoClip's numpy code interpolates; the
    difference is below one history entry). Slots of non-finite steps stay empty (+inf):
    until the buffer wraps, a run with many NaN steps gets a slightly higher threshold.

    Args:
        percentile: 0-100; 10 is the paper's choice for the global variant.
        history: how many past norms are kept.
    """

    def __init__(self, percentile: float = 10.0, history: int = 1000) -> None:
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        self.percentile = float(percentile)
        self.history = torch.full((int(history),), float("nan"))
        self.count = torch.zeros((), dtype=torch.int64)
        self.calls = 0  # host-side upper bound of the finite norms recorded (no sync to read count)

    def __call__(self, ctx: GradContext) -> None:
        device = ctx.raw_norm.device
        if self.history.device != device:
            self.history, self.count = self.history.to(device), self.count.to(device)
        record_norm_(self.history, self.count, ctx.norm)
        self.calls += 1
        ctx.clip_to(percentile_threshold(self.history, self.percentile, self.calls))

    def state_dict(self) -> dict[str, Any]:
        return {"percentile": self.percentile, "history": self.history.clone(), "count": self.count.clone(),
                "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.percentile = float(state["percentile"])
        self.history = state["history"].clone().to(self.history.device)
        self.count = state["count"].clone().to(self.history.device)
        self.calls = int(state.get("calls", int(self.count)))
