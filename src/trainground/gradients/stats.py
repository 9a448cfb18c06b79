"""Gradient statistics: per-layer norms, clipped fraction; a watcher in the chain (changes nothing)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext


def layer_norms(grads: list[Tensor]) -> Tensor:
    """L2 norm of each gradient tensor, stacked (one ``_foreach_norm`` kernel, no host sync)."""
    if not grads:
        return torch.zeros(0)
    return torch.stack([n.float() for n in torch._foreach_norm(grads)])


class GradientStats:
    """Records per-layer norms (optional, one kernel), the global norm and the clipped fraction.

    Put it last in a chain to see what the optimizer receives. Values stay tensors until read.

    Args:
        per_layer: also record the norm of every parameter tensor.
    """

    def __init__(self, per_layer: bool = False) -> None:
        self.per_layer = per_layer
        self.steps = torch.zeros((), dtype=torch.int64)
        self.clipped = torch.zeros((), dtype=torch.int64)
        self.last: dict[str, Tensor] = {}

    def __call__(self, ctx: GradContext) -> None:
        if self.steps.device != ctx.raw_norm.device:
            self.steps, self.clipped = self.steps.to(ctx.raw_norm.device), self.clipped.to(ctx.raw_norm.device)
        clipped = (ctx.scale < ctx.base_scale).to(torch.int64) if ctx.base_scale is not None else ctx.scale < 1
        self.steps = self.steps + 1
        self.clipped = self.clipped + clipped
        self.last = {"grad_norm": ctx.norm, "clip_threshold": ctx.threshold}
        if self.per_layer:
            self.last["layer_norms"] = layer_norms(ctx.grads) * ctx.scale

    def host(self, ctx: HostContext) -> None:
        """The Guard's CPU path: the same figures (counters stay tensors: two tiny ops)."""
        self.steps = self.steps + 1
        self.clipped = self.clipped + int(ctx.scale < ctx.base_scale)
        self.last = {"grad_norm": torch.tensor(ctx.norm), "clip_threshold": torch.tensor(ctx.threshold)}
        if self.per_layer:
            self.last["layer_norms"] = layer_norms(ctx.grads) * ctx.scale

    @property
    def clipped_fraction(self) -> Tensor:
        return self.clipped.double() / self.steps.clamp_min(1).double()

    def state_dict(self) -> dict[str, Any]:
        return {"per_layer": self.per_layer, "steps": self.steps.clone(), "clipped": self.clipped.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_layer = bool(state["per_layer"])
        self.steps, self.clipped = state["steps"].clone(), state["clipped"].clone()
