"""Normalise the global norm: every step's gradients are scaled to the same global norm ``level``.

Issue 15, fourth pass, second candidate for a recurrent model's default under Adam. The principle,
written (in gradients/config.py, commit 8ff0af9) after the first candidate's LSTM adding runs on
seeds 0-3 and before any run of this one: Adam is invariant to a constant gradient scale but not
to a changing one; its second moment averages g^2 over ~1/(1-beta2) = 1000 steps (bias-corrected:
every step so far during the first 1000), so a norm that falls k-fold from the first steps to a
plateau shortens the plateau's steps by up to k until the memory fades. A fixed clip below every
norm of a run removes the norm's history from the second moment (why ``clip_grad_norm_(0.1)`` wins
LSTM adding runs); no clip judged on past norms can (it cannot cut the first steps to a level it
has not seen yet). Normalising is that fixed clip's limit with the level gone. Said in advance:
the norm no longer tells Adam that the gradient shrank near a minimum.

Measured and rejected by the rule fixed before the runs (benchmarks/README.md, "C, extended,
fourth pass"): LSTM adding 6/8 and 5/8 on seeds 0-1 and 2-3 (as the best fixed threshold), but
3/8 on the fresh seeds 4-5 (no clipping 4/8, clip 0.1 6/8), and LSTM order seeds 2-3 1/8 with one
run ending above its initial loss. Kept as a transform (the benchmark's ``guard_normalize`` row),
not a ``GuardConfig`` option.
"""

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
