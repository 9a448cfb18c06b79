"""Skip-on-spike: a step whose gradient norm or loss is far outside its recent statistics is skipped."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext, ScalarState
from trainground.gradients.zscore import ema_update_, ema_update_host


def spike_keep(value: Tensor, mean: Tensor, var: Tensor, count: Tensor, *, z_skip: float, warmup: int) -> Tensor:
    """1.0 when ``log(value)`` is within ``z_skip`` standard deviations above its EMA (or still warming up),
    0.0 when it is a spike or not finite. A tensor, so no host sync decides the skip.

    Log space makes the test scale-free: a 1000x jump is a spike whether norms are 1e-3 or 1e3.
    """
    logv = torch.log(value.float().clamp_min(1e-30))  # works elementwise on a vector of values
    # A floor of 0.25 in log space: nothing within 4.5x (at z 6) of the mean is ever a spike,
    # so a young or very flat history does not flag ordinary wiggles.
    std = var.clamp_min(0).sqrt().clamp_min(0.25)
    calm = (logv - mean) <= z_skip * std
    ok = torch.isfinite(logv) & (calm | (count < warmup))
    return ok.to(torch.float32)


def spike_keep_host(value: float, mean: float, var: float, count: int, *, z_skip: float, warmup: int) -> bool:
    """:func:`spike_keep` for one Python float (the Guard's CPU path): True to keep the step."""
    if not math.isfinite(value):
        return False
    logv = math.log(max(value, 1e-30))
    std = max(math.sqrt(max(var, 0.0)), 0.25)
    return logv - mean <= z_skip * std or count < warmup


class SpikeSkip(ScalarState):
    """Skip the step (multiplier 0) when the norm or the loss is a spike in log space.

    Statistics are EMAs of log-norm and log-loss fed only by steps that were taken, so a spike
    never raises the bar for the next one. ``streak`` counts consecutive skipped steps; the
    Guard escalates to a rollback when it persists.

    Args:
        z_skip: how many EMA standard deviations above the mean make a spike (log space).
        alpha: EMA decay.
        warmup: steps observed before anything is skipped (non-finite values are always skipped).
            1: the very first update is judged already; a step that wrecks the model at once
            (Adam at lr 1) must not enter the statistics it is judged by.
        watch_loss: also test the loss (needs ``ctx.loss``).
    """

    def __init__(self, z_skip: float = 6.0, alpha: float = 0.95, warmup: int = 1, watch_loss: bool = True) -> None:
        self.z_skip, self.alpha, self.warmup, self.watch_loss = z_skip, alpha, warmup, watch_loss
        self.stats = torch.zeros(2, 2)  # rows: norm, loss; cols: mean, var (of the log)
        self.count = torch.zeros(2, dtype=torch.int64)
        self.streak = torch.zeros((), dtype=torch.int64)
        self.skipped = torch.zeros((), dtype=torch.int64)

    _fields: ClassVar[dict[str, torch.dtype]] = {"stats": torch.float32, "count": torch.int64, "streak": torch.int64, "skipped": torch.int64}

    def _to(self, device: torch.device) -> None:
        self._device_state(device)

    def reset_streak(self) -> None:
        """Forget the current run of skipped steps (after a rollback)."""
        self.streak = 0 if self._on_host else torch.zeros_like(self.streak)

    def snapshot_state(self) -> None:
        """Rollback hook: nothing to keep (the statistics only ever saw healthy steps)."""
        return None

    def rollback(self, saved: None, *, shrink: float) -> None:
        """Rollback hook: the skipped steps were undone, so is their streak."""
        self.reset_streak()

    def host(self, ctx: HostContext) -> None:
        """The same test in floats (the Guard's CPU path; no tensor op)."""
        self._host_state()
        stats, count, z, warmup = self.stats, self.count, self.z_skip, self.warmup
        norm, loss = ctx.norm, ctx.loss if self.watch_loss else None
        keep = spike_keep_host(norm, stats[0][0], stats[0][1], count[0], z_skip=z, warmup=warmup) and (
            loss is None or spike_keep_host(loss, stats[1][0], stats[1][1], count[1], z_skip=z, warmup=warmup))
        if keep:  # a skipped step does not feed the statistics
            ema_update_host(stats[0], count, 0, math.log(max(norm, 1e-30)), alpha=self.alpha, warmup=warmup)
            if loss is not None:
                ema_update_host(stats[1], count, 1, math.log(max(loss, 1e-30)), alpha=self.alpha, warmup=warmup)
            self.streak = 0
        else:
            self.streak += 1
            self.skipped += 1
            ctx.keep = 0.0

    def __call__(self, ctx: GradContext) -> None:
        self._to(ctx.raw_norm.device)
        # Norm and loss are tested as one 2-vector: a handful of kernels per step, not two sets.
        if self.watch_loss and ctx.loss is not None:
            values = torch.stack([ctx.norm.float().reshape(()), ctx.loss.detach().float().reshape(())])
            rows = 2
        else:
            values, rows = ctx.norm.float().reshape(1), 1
        mean, var, count = self.stats[:rows, 0], self.stats[:rows, 1], self.count[:rows]
        keep = spike_keep(values, mean, var, count, z_skip=self.z_skip, warmup=self.warmup).amin()
        # A skipped step does not feed the statistics: ema_update_ ignores NaN.
        logv = torch.where(keep > 0, torch.log(values.clamp_min(1e-30)), float("nan"))
        ema_update_(mean, var, count, logv, alpha=self.alpha, warmup=self.warmup)
        self.streak = torch.where(keep > 0, torch.zeros_like(self.streak), self.streak + 1)
        self.skipped = self.skipped + (keep == 0).to(self.skipped.dtype)
        ctx.keep = ctx.keep * keep

    def state_dict(self) -> dict[str, Any]:
        return {"z_skip": self.z_skip, "alpha": self.alpha, "warmup": self.warmup, "watch_loss": self.watch_loss,
                **{name: self._state_tensor(name) for name in self._fields}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.z_skip, self.alpha = float(state["z_skip"]), float(state["alpha"])
        self.warmup, self.watch_loss = int(state["warmup"]), bool(state["watch_loss"])
        self._load_tensors(state)
