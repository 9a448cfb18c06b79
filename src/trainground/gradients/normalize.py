"""Normalise the global norm: every step's gradients are scaled to the same global norm ``level``."""

from __future__ import annotations

import math
from typing import Any

import torch

from trainground.gradients.context import GradContext, HostContext


class NormalizeGlobalNorm:
    """Scale the gradients (down or up) so their global norm is ``level``; a zero or non-finite
    norm is left as it is (the Guard skips a non-finite step).

    Under Adam (and any optimizer whose update is invariant to a constant gradient scale) the
    level drops out: the update sees the gradient's direction and its per-coordinate statistics,
    not the history of its norm. That is what a fixed ``clip_grad_norm_`` below every norm of a
    run does, without choosing the level. Under SGD it changes what the learning rate means (the
    step becomes ``lr * level`` long): do not use it there.

    Args:
        level: the global norm every step is given (1.0: the update is ``lr`` times a unit vector
            for SGD; irrelevant for Adam).
    """

    def __init__(self, level: float = 1.0) -> None:
        if not level > 0:
            raise ValueError(f"level must be > 0, got {level}")
        self.level = float(level)

    def __call__(self, ctx: GradContext) -> None:
        norm = ctx.norm
        ok = torch.isfinite(norm) & (norm > 0)
        ctx.scale = ctx.scale * torch.where(ok, self.level / norm.clamp_min(1e-30), torch.ones_like(norm))
        ctx.threshold = torch.minimum(ctx.threshold, torch.full_like(ctx.threshold, self.level))

    def host(self, ctx: HostContext) -> None:
        norm = ctx.norm
        if math.isfinite(norm) and norm > 0:
            ctx.scale = ctx.scale * (self.level / norm)
        ctx.threshold = min(ctx.threshold, self.level)

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = float(state["level"])
