"""Percentile clip (AutoClip): clip the global norm at the p-th percentile of its own history."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext, global_norm


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
        # Host path (the Guard on a CPU): the ring as a list plus its finite values kept sorted,
        # so the percentile is one index (bisect insert/remove in a list of <= history floats).
        self._ring: list[float] | None = None
        self._sorted: list[float] = []
        self._n = 0

    def _host_state(self) -> None:
        if self._ring is None:
            self._ring = self.history.double().tolist()
            self._n = int(self.count)
            self._sorted = sorted(v for v in self._ring if not math.isnan(v))

    def _device_state(self, device: torch.device) -> None:
        if self._ring is not None:
            self.history = torch.tensor(self._ring, dtype=torch.float32, device=device)
            self.count = torch.tensor(self._n, dtype=torch.int64, device=device)
            self._ring = None
        elif self.history.device != device:
            self.history, self.count = self.history.to(device), self.count.to(device)

    def host(self, ctx: HostContext) -> None:
        """The same clip in floats (the Guard's CPU path): record the norm, clip at the percentile."""
        self._host_state()
        ring, ordered = self._ring, self._sorted
        assert ring is not None
        norm = ctx.norm
        if math.isfinite(norm):  # a NaN or inf norm never enters the history
            pos = self._n % len(ring)
            old = ring[pos]
            if not math.isnan(old):
                del ordered[bisect.bisect_left(ordered, old)]
            ring[pos] = norm
            bisect.insort(ordered, norm)
            self._n += 1
        self.calls += 1
        n = min(self.calls, len(ring))  # empty slots of the window count as +inf (see percentile_threshold)
        k = max(1, math.ceil(self.percentile / 100.0 * n))
        ctx.clip_to(ordered[k - 1] if k <= len(ordered) else math.inf)

    def __call__(self, ctx: GradContext) -> None:
        self._device_state(ctx.raw_norm.device)
        record_norm_(self.history, self.count, ctx.norm)
        self.calls += 1
        ctx.clip_to(percentile_threshold(self.history, self.percentile, self.calls))

    def state_dict(self) -> dict[str, Any]:
        if self._ring is not None:
            history = torch.tensor(self._ring, dtype=torch.float64)  # float64: a resume is exact
            count = torch.tensor(self._n, dtype=torch.int64)
        else:
            history, count = self.history.clone(), self.count.clone()
        return {"percentile": self.percentile, "history": history, "count": count, "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.percentile = float(state["percentile"])
        self._ring = None
        self.history = state["history"].clone()
        self.count = state["count"].clone()
        self.calls = int(state.get("calls", int(self.count)))
