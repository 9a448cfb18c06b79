"""Dynamic clip thresholds for named gradient parts (tasks, modality groups).

``TaskGradients`` clips each task's gradient and each parameter group's gradient on its own.
With fixed limits a user must know every part's scale in advance; here each part's limit
follows a running statistic of *its own* norm, with the statistics of the library's two
adaptive global clippers, applied per part:

- ``"percentile"``: AutoClip (``gradients.percentile``): the part's limit is the
  ``percentile``-th percentile of its last ``history`` norms;
- ``"zscore"``: ZClip (``gradients.zscore``): an EMA mean and variance of the part's norm; a
  norm more than ``z_thresh`` standard deviations above the mean is clipped back towards it
  (a part whose norm is steady is never clipped).

Each part's statistic is fed the norm it was clipped to (ZClip) or its raw finite norm
(AutoClip), exactly as the global clippers do; a non-finite norm never enters a history. A
fixed limit, where one is configured, stays a cap on top (the smaller of the two acts).
Everything stays on the device: no host sync per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from trainground.bounds import AT_LEAST_ONE, FRACTION, POSITIVE
from trainground.gradients.percentile import record_norm_
from trainground.gradients.zscore import ema_update_, zscore_threshold

DynamicKind = Literal["off", "percentile", "zscore"]


@dataclass
class DynamicClipConfig:
    """How a per-task / per-group limit follows its own gradient norm (off by default)."""

    # "percentile" (AutoClip per part), "zscore" (ZClip per part) or "off" (fixed limits only).
    kind: DynamicKind = "off"
    # AutoClip's percentile of the part's own norm history (the paper's default, 10).
    percentile: Annotated[float, POSITIVE] = 10.0
    # AutoClip's history length in steps.
    history: Annotated[int, AT_LEAST_ONE] = 1000
    # ZClip's EMA decay, z cut-off and warm-up steps (the paper's defaults).
    alpha: Annotated[float, FRACTION] = 0.97
    z_thresh: Annotated[float, POSITIVE] = 2.5
    warmup: Annotated[int, AT_LEAST_ONE] = 25

    @property
    def enabled(self) -> bool:
        return self.kind != "off"


class NormThresholds:
    """Per-part running statistics of gradient norms and the limits they give.

    Args:
        names: the parts (e.g. task names, or group names), in the order of the norms passed.
        config: which statistic (see :class:`DynamicClipConfig`).
    """

    def __init__(self, names: Sequence[str], config: DynamicClipConfig) -> None:
        if not config.enabled:
            raise ValueError("NormThresholds needs a dynamic kind ('percentile' or 'zscore')")
        self.names, self.config = list(names), config
        k = len(self.names)
        self.history = torch.full((k, config.history), float("nan"))
        self.mean, self.var = torch.zeros(k), torch.zeros(k)
        self.count = torch.zeros(k, dtype=torch.int64)

    def _to(self, device: torch.device) -> None:
        if self.count.device != device:
            self.history, self.mean = self.history.to(device), self.mean.to(device)
            self.var, self.count = self.var.to(device), self.count.to(device)

    def limits(self, norms: Tensor, cap: Tensor | None = None) -> Tensor:
        """``[K]`` limits for this step's ``[K]`` norms (``inf``: no clip), and update the statistics.

        Args:
            norms: each part's gradient norm this step, before clipping.
            cap: ``[K]`` fixed limits to keep on top (``inf`` where none), or None.
        """
        self._to(norms.device)
        norms = norms.float()
        c = self.config
        if c.kind == "percentile":
            # AutoClip records the raw norm, then clips at the history's percentile (this step included).
            parts = []
            for i in range(len(self.names)):
                count = self.count[i]  # a view: record_norm_ advances self.count in place
                record_norm_(self.history[i], count, norms[i])
                parts.append(_percentile_of_filled(self.history[i], count, c.percentile))
            limit = torch.stack(parts)
        else:
            limit = torch.where(self.count >= c.warmup, zscore_threshold(self.mean, self.var, norms, z_thresh=c.z_thresh),
                                torch.full_like(norms, float("inf")))
        if cap is not None:
            limit = torch.minimum(limit, cap.to(limit.device, limit.dtype))
        if c.kind == "zscore":
            ema_update_(self.mean, self.var, self.count, torch.minimum(norms, limit), alpha=c.alpha, warmup=c.warmup)
        return limit

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "history": self.history.cpu(), "mean": self.mean.cpu(), "var": self.var.cpu(),
                "count": self.count.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"NormThresholds state is for parts {state['names']}, not {self.names}")
        device = self.count.device
        self.history, self.mean = state["history"].to(device), state["mean"].to(device)
        self.var, self.count = state["var"].to(device), state["count"].to(device)


def _percentile_of_filled(history: Tensor, count: Tensor, percentile: float) -> Tensor:
    """``percentile.percentile_threshold`` with the filled count as a device tensor: that
    function takes ``filled`` as a host integer, which here would cost one sync per part and step.

    Sorting the ring (NaN last as +inf) and picking rank ``ceil(p/100 * filled)`` gives the
    same nearest-rank percentile as ``percentile_threshold(history, p, filled)``.
    """
    filled = count.clamp(max=history.numel())
    ordered = torch.where(torch.isnan(history), float("inf"), history).sort().values
    rank = torch.ceil(percentile / 100.0 * filled.float()).long().clamp(min=1) - 1
    value = ordered.gather(0, rank.reshape(1)).squeeze(0)
    return torch.where(filled > 0, value, torch.full_like(value, float("inf")))


__all__ = ["DynamicClipConfig", "DynamicKind", "NormThresholds"]
