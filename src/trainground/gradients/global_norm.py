"""Clip by global norm: the gradients' joint L2 norm is at most ``max_norm``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext, global_norm


def clip_by_global_norm_(grads: Iterable[Tensor], max_norm: float | Tensor) -> Tensor:
    """Scale ``grads`` in place so their global L2 norm is at most ``max_norm``.

    Same maths as ``torch.nn.utils.clip_grad_norm_``; non-finite gradients are left as they are
    (the caller decides to skip the step).

    Args:
        grads: gradient tensors.
        max_norm: the largest allowed global norm (float or 0-dim tensor).

    Returns:
        The global norm before clipping (0-dim tensor).
    """
    grads = [g for g in grads if g is not None]
    norm = global_norm(grads)
    factor = torch.clamp(torch.as_tensor(max_norm, device=norm.device) / (norm + 1e-6), max=1.0)
    torch._foreach_mul_(grads, torch.where(torch.isfinite(factor), factor, 1.0))
    return norm


class ClipByGlobalNorm:
    """Clip the global gradient norm at a fixed ``max_norm``.

    Args:
        max_norm: the largest allowed global norm.
    """

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = float(max_norm)

    def __call__(self, ctx: GradContext) -> None:
        ctx.clip_to(torch.full((), self.max_norm, device=ctx.raw_norm.device))

    def host(self, ctx: HostContext) -> None:
        ctx.clip_to(self.max_norm)

    def state_dict(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_norm = float(state["max_norm"])
