"""Clip by value: every gradient element in ``[-clip_value, clip_value]``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, global_norm


def clip_by_value_(grads: Iterable[Tensor], clip_value: float) -> None:
    """Clamp every element of ``grads`` in place to ``[-clip_value, clip_value]`` (NaN stays NaN).

    Args:
        grads: gradient tensors.
        clip_value: the largest allowed magnitude of an element.
    """
    grads = [g for g in grads if g is not None]
    torch._foreach_clamp_min_(grads, -clip_value)
    torch._foreach_clamp_max_(grads, clip_value)


class ClipByValue:
    """Clamp each gradient element to ``[-clip_value, clip_value]``.

    Args:
        clip_value: the largest allowed magnitude of an element.
    """

    def __init__(self, clip_value: float = 1.0) -> None:
        self.clip_value = float(clip_value)

    def __call__(self, ctx: GradContext) -> None:
        ctx.materialize()
        clip_by_value_(ctx.grads, self.clip_value)
        ctx.raw_norm = global_norm(ctx.grads, ctx.flat)

    def state_dict(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.clip_value = float(state["clip_value"])
