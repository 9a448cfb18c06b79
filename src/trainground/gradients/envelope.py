"""Envelope clip: hold every step's global norm to the lower envelope of the recent norms.

Issue 15, sixth pass, a candidate for a recurrent model under Adam (principle and adoption rule
written before its runs, benchmarks/README.md "C, extended, sixth pass"). Adam's update is
invariant to a constant gradient scale; what lengthens or shortens its steps is a step's norm
against the norms its second moment remembers (~1/(1-beta2) = 1000 steps). On a plateau the
batch norms fluctuate, and the large batches (and the first steps' large gradients) dominate
that memory, so the plateau's typical steps are short. A level that follows the norm DOWN at
once and UP by at most a factor ``rise`` per ``horizon`` steps is the lower envelope of the
recent norms; clipping every step to it gives Adam gradients of nearly one norm (the direction
and the per-coordinate statistics, not the batch-to-batch size), without a level to choose.
``horizon = 10`` is Adam's first-moment horizon 1/(1-beta1) and ``rise = 2`` lets a lasting
rise (a plateau's end: the norm 5x within ~20 steps) be followed within ~23 steps; both are
fixed from those reasons, not tuned. Said in advance: like every clip judged on past norms it
cannot cut the first step (the level starts at the first norm), and on a non-recurrent model
it would clip the norm's typical level, which the default clip's principle forbids
(gradients/config.py): it is meant for recurrent models only.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from trainground.gradients.context import GradContext, HostContext, ScalarState


class EnvelopeClip(ScalarState):
    """Clip the global norm to ``min(level * rise**(1/horizon), norm)``, the new level.

    The level starts at the first finite norm (nothing is clipped on the first step); a
    non-finite norm neither clips nor moves the level (the Guard skips such a step).

    Args:
        rise: the largest factor by which the level may grow over ``horizon`` steps.
        horizon: steps over which the level may grow by ``rise``.
    """

    _fields: ClassVar[dict[str, torch.dtype]] = {"level": torch.float32}

    def __init__(self, rise: float = 2.0, horizon: int = 10) -> None:
        if not rise >= 1:
            raise ValueError(f"rise must be >= 1, got {rise}")
        if not horizon >= 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.rise, self.horizon = float(rise), int(horizon)
        self.level = torch.full((), math.inf, dtype=torch.float32)

    @property
    def per_step(self) -> float:
        return self.rise ** (1.0 / self.horizon)

    def host(self, ctx: HostContext) -> None:
        self._host_state()
        norm = ctx.norm
        if not math.isfinite(norm):
            return
        threshold = self.level * self.per_step
        ctx.clip_to(threshold)
        self.level = min(norm, threshold)

    def __call__(self, ctx: GradContext) -> None:
        self._device_state(ctx.raw_norm.device)
        norm = ctx.norm
        finite = torch.isfinite(norm)
        threshold = torch.where(finite, self.level * self.per_step, torch.full_like(norm, math.inf))
        ctx.clip_to(threshold)
        self.level = torch.where(finite, torch.minimum(norm, threshold), self.level).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"rise": self.rise, "horizon": self.horizon, "level": self._state_tensor("level")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rise, self.horizon = float(state["rise"]), int(state["horizon"])
        self._load_tensors(state)
