"""Unit-wise adaptive gradient clipping (AGC): each unit's gradient norm <= lambda x its weight norm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, global_norm


def unitwise_norm(x: Tensor) -> Tensor:
    """L2 norm per output unit (dim 0) for matrices and conv kernels; the whole tensor for vectors."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


def adaptive_clip_(grads: Sequence[Tensor], params: Sequence[Tensor], *, clipping: float = 0.01,
                   eps: float = 1e-3) -> None:
    """Clip in place every unit whose gradient norm exceeds ``clipping * max(weight norm, eps)``.

    Args:
        grads: gradient tensors, aligned with ``params``.
        params: the parameters (their norms set the thresholds).
        clipping: lambda, the largest allowed ratio of gradient to weight norm (NFNets: 0.01).
        eps: floor of the weight norm, so zero-initialised units can still move.

    References:
        Brock, De, Smith, Simonyan. High-Performance Large-Scale Image Recognition Without
        Normalization. ICML 2021.
    """
    for g, p in zip(grads, params, strict=True):
        max_norm = unitwise_norm(p.detach()).clamp_min(eps) * clipping
        g_norm = unitwise_norm(g)
        g.mul_(torch.where(g_norm > max_norm, max_norm / g_norm.clamp_min(1e-6), torch.ones_like(g_norm)))


class AdaptiveClip:
    """AGC as a chain step (stateless apart from its options).

    Args:
        clipping: lambda (NFNets: 0.01 for batch 4096; larger for small batches).
        eps: floor of the weight norm.
    """

    def __init__(self, clipping: float = 0.01, eps: float = 1e-3) -> None:
        self.clipping, self.eps = float(clipping), float(eps)

    def __call__(self, ctx: GradContext) -> None:
        ctx.materialize()
        adaptive_clip_(ctx.grads, ctx.params, clipping=self.clipping, eps=self.eps)
        ctx.raw_norm = global_norm(ctx.grads, ctx.flat)

    def state_dict(self) -> dict[str, Any]:
        return {"clipping": self.clipping, "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.clipping, self.eps = float(state["clipping"]), float(state["eps"])
