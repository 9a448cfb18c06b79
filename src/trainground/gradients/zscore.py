"""Z-score clip (ZClip): clip the global norm when it is a statistical outlier of its EMA."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from trainground.gradients.context import (
    GradContext,
    HostContext,
    ScalarState,
    global_norm,
)


def zscore_threshold(mean: Tensor, var: Tensor, norm: Tensor, *, z_thresh: float) -> Tensor:
    """ZClip's adaptive threshold: ``mean + z_thresh**2 / z * std`` when ``z > z_thresh``, else ``inf``.

    ``z = (norm - mean) / std``. The ``z_thresh / z`` factor ("adaptive scaling") clips harder
    the further out the norm is.
    """
    std = var.clamp_min(0).sqrt()
    z = (norm - mean) / (std + 1e-12)
    clipped = mean + (z_thresh / z.clamp_min(1e-12)) * z_thresh * std
    return torch.where(z > z_thresh, clipped, torch.full_like(norm, float("inf")))


def ema_update_(mean: Tensor, var: Tensor, count: Tensor, value: Tensor, *, alpha: float, warmup: int) -> None:
    """Update EMA ``mean``/``var`` in place with ``value`` (ignored when not finite).

    During the first ``warmup`` values the weights are 1/n (a plain running mean/variance),
    then ``1 - alpha``: the EMA starts from the warm-up statistics, as ZClip does.
    """
    finite = torch.isfinite(value)
    n = count.to(mean.dtype) + 1
    weight = torch.where(n <= warmup, 1.0 / n, torch.full_like(n, 1.0 - alpha))
    value = torch.where(finite, value.to(mean.dtype), mean)
    delta = value - mean
    new_mean = mean + weight * delta
    new_var = (1 - weight) * (var + weight * delta * delta)
    mean.copy_(torch.where(finite, new_mean, mean))
    var.copy_(torch.where(finite, new_var, var))
    count.add_(finite.to(count.dtype))


def ema_update_host(stats: list[float], counts: list[int], i: int, value: float, *, alpha: float,
                    warmup: int) -> None:
    """:func:`ema_update_` in floats: ``stats = [mean, var]`` and ``counts[i]`` updated in place
    (a non-finite ``value`` is ignored)."""
    if not math.isfinite(value):
        return
    mean, var = stats
    n = counts[i] + 1
    weight = 1.0 / n if n <= warmup else 1.0 - alpha
    delta = value - mean
    stats[0] = mean + weight * delta
    stats[1] = (1 - weight) * (var + weight * delta * delta)
    counts[i] = n


def zscore_threshold_host(mean: float, var: float, norm: float, *, z_thresh: float) -> float:
    """:func:`zscore_threshold` in floats."""
    std = math.sqrt(max(var, 0.0))
    z = (norm - mean) / (std + 1e-12)
    if not z > z_thresh:
        return math.inf
    return mean + (z_thresh / max(z, 1e-12)) * z_thresh * std


# Level-shift rule (issue 15, fifth pass; written before its runs). ZClip feeds its EMA the clipped
# norm so that a spike does not inflate the statistics it is judged by. Under ZClip's own model
# (a normal norm around its EMA) a z > 2.5 exceedance is rare, ~0.6 % of steps, so a clip that
# fires on MOST recent steps is no longer cutting outliers: its threshold is below the median of
# the recent norms, i.e. it clips the norm's typical level, which the default clip's principle
# (gradients/config.py) forbids. The level has moved (a recurrent model leaving a plateau) and a
# clipped feed can never catch up (measured: ZClip "locks"). So with ``follow_level_shift`` an EMA
# of the clip's firing (same decay ``alpha``, the statistics' own horizon of ~33 steps) is kept,
# and while it is above FOLLOW_FRACTION = 1/2 (the median: more than half of the recent steps
# clipped) the EMA is fed the raw norm and follows the new level; the step itself is still clipped
# at the threshold of the moment. 1/2 follows from "typical level = median", not from any
# benchmark. An isolated spike or a short burst (fewer than ~23 clipped steps in a row from a
# quiet start) keeps the published behaviour: clipped and fed clipped.
FOLLOW_FRACTION = 0.5


def follow_update_(rate: Tensor, fired: Tensor, active: Tensor, *, alpha: float) -> Tensor:
    """Update the clip's firing-rate EMA in place (only where ``active``); returns ``rate > 1/2``."""
    new = alpha * rate + (1 - alpha) * fired.to(rate.dtype)
    rate.copy_(torch.where(active, new, rate))
    return rate > FOLLOW_FRACTION


def zscore_clip_(
    grads: list[Tensor], mean: Tensor, var: Tensor, count: Tensor, *,
    alpha: float = 0.97, z_thresh: float = 2.5, warmup: int = 25, rate: Tensor | None = None,
) -> Tensor:
    """Clip ``grads`` in place at ZClip's threshold, then update the EMA with the clipped norm.

    With ``rate`` (a 0-dim float tensor, the clip's firing-rate EMA, updated in place) the EMA
    follows a level shift: it is fed the raw norm while the clip fires on more than half of the
    recent steps (``FOLLOW_FRACTION``; :class:`ZScoreClip`'s ``follow_level_shift``). Without it,
    ZClip as published.

    Returns:
        The threshold used (``inf`` when nothing was clipped), 0-dim tensor.

    References:
        Kumar, Owen, Subramaniam et al. ZClip: Adaptive Spike Mitigation for LLM Pre-Training. 2025.
    """
    norm = global_norm(grads)
    threshold = torch.where(count >= warmup, zscore_threshold(mean, var, norm, z_thresh=z_thresh),
                            torch.full_like(norm, float("inf")))
    factor = torch.clamp(threshold / (norm + 1e-12), max=1.0)
    torch._foreach_mul_(grads, torch.where(torch.isfinite(factor), factor, 1.0))
    fed = torch.minimum(norm, threshold)
    if rate is not None:
        active = (count >= warmup) & torch.isfinite(norm)
        fed = torch.where(follow_update_(rate, threshold < norm, active, alpha=alpha), norm, fed)
    ema_update_(mean, var, count, fed, alpha=alpha, warmup=warmup)
    return threshold


class ZScoreClip(ScalarState):
    """ZClip: EMA mean/variance of the global norm; an outlier norm is clipped back towards the mean.

    The EMA is fed the clipped norm, so a spike does not inflate the statistics it is judged by;
    a non-finite norm is not fed at all. The price: a norm that jumps to a new, lasting level
    (a recurrent model leaving a plateau) is clipped and fed clipped, so the threshold may never
    catch up and keeps clipping (measured on an LSTM, benchmarks/README.md, "locks").
    ``follow_level_shift=True`` removes the lock: while the clip fires on more than half of the
    recent steps (an EMA of its firing, decay ``alpha``) the EMA is fed the raw norm (the rule
    and its a-priori reason: the comment above :data:`FOLLOW_FRACTION`). False (the default of
    this class) is ZClip as published.

    Args:
        alpha: EMA decay (ZClip default 0.97).
        z_thresh: z-score above which the norm is clipped (ZClip default 2.5).
        warmup: norms collected before any clipping (ZClip default 25).
        max_norm: optional hard cap on top (ZClip's package default is 1.0; None here).
        follow_level_shift: feed the EMA the raw norm while the clip fires persistently.
    """

    def __init__(self, alpha: float = 0.97, z_thresh: float = 2.5, warmup: int = 25,
                 max_norm: float | None = None, follow_level_shift: bool = False) -> None:
        self.alpha, self.z_thresh, self.warmup, self.max_norm = alpha, z_thresh, warmup, max_norm
        self.follow_level_shift = follow_level_shift
        self.mean = torch.zeros((), dtype=torch.float32)
        self.var = torch.zeros((), dtype=torch.float32)
        self.count = torch.zeros((), dtype=torch.int64)
        self.rate = torch.zeros((), dtype=torch.float32)  # EMA of "the z-test clipped this step"

    _fields: ClassVar[dict[str, torch.dtype]] = {"mean": torch.float32, "var": torch.float32,
                                                 "count": torch.int64, "rate": torch.float32}

    def host(self, ctx: HostContext) -> None:
        """The same clip in floats (the Guard's CPU path)."""
        self._host_state()
        norm = ctx.norm
        threshold = math.inf
        if self.count >= self.warmup:
            threshold = zscore_threshold_host(self.mean, self.var, norm, z_thresh=self.z_thresh)
        follow = False
        if self.follow_level_shift and self.count >= self.warmup and math.isfinite(norm):
            self.rate = self.alpha * self.rate + (1 - self.alpha) * float(threshold < norm)
            follow = self.rate > FOLLOW_FRACTION
        if self.max_norm is not None:
            threshold = min(threshold, self.max_norm)
        fed = norm if follow else min(norm, threshold)
        ctx.clip_to(threshold)
        stats, counts = [self.mean, self.var], [self.count]
        ema_update_host(stats, counts, 0, fed, alpha=self.alpha, warmup=self.warmup)
        self.mean, self.var, self.count = stats[0], stats[1], counts[0]

    def __call__(self, ctx: GradContext) -> None:
        self._device_state(ctx.raw_norm.device)
        norm = ctx.norm
        threshold = torch.where(self.count >= self.warmup,
                                zscore_threshold(self.mean, self.var, norm, z_thresh=self.z_thresh),
                                torch.full_like(norm, float("inf")))
        follow = None
        if self.follow_level_shift:
            active = (self.count >= self.warmup) & torch.isfinite(norm)
            follow = follow_update_(self.rate, threshold < norm, active, alpha=self.alpha)
        if self.max_norm is not None:
            threshold = threshold.clamp_max(self.max_norm)
        fed = torch.minimum(norm, threshold)
        if follow is not None:
            fed = torch.where(follow, norm, fed)
        ctx.clip_to(threshold)
        ema_update_(self.mean, self.var, self.count, fed, alpha=self.alpha, warmup=self.warmup)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "z_thresh": self.z_thresh, "warmup": self.warmup, "max_norm": self.max_norm,
                "follow_level_shift": self.follow_level_shift,
                **{name: self._state_tensor(name) for name in self._fields}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha, self.z_thresh = float(state["alpha"]), float(state["z_thresh"])
        self.warmup, self.max_norm = int(state["warmup"]), state["max_norm"]
        self.follow_level_shift = bool(state.get("follow_level_shift", False))
        state = {"rate": torch.zeros((), dtype=torch.float32), **state}  # checkpoints from before the rule
        self._load_tensors(state)
