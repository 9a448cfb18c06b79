"""``chain``: several gradient transforms applied in order, with one state_dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, GradientTransform, HostContext


class Chain:
    """Transforms applied in order; the pending scale is written to the gradients once, at the end.

    Args:
        transforms: the transforms, first applied first.
    """

    def __init__(self, transforms: Sequence[GradientTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, ctx: GradContext) -> None:
        # A chain is itself a transform (chains nest); the Guard materialises once at the end.
        for transform in self.transforms:
            transform(ctx)

    @property
    def supports_host(self) -> bool:
        """True when every transform has a float path (``host``); the Guard then uses it on a CPU."""
        return all(t.supports_host if isinstance(t, Chain) else callable(getattr(t, "host", None))
                   for t in self.transforms)

    def host(self, ctx: HostContext) -> None:
        for transform in self.transforms:
            transform.host(ctx)  # type: ignore[attr-defined]

    def after_step(self, ctx: GradContext | HostContext, neg_update: Tensor) -> None:
        for transform in self.transforms:
            hook = getattr(transform, "after_step", None)
            if hook is not None:
                hook(ctx, neg_update)

    def with_hook(self, name: str) -> list[Any]:
        """The transforms (in nested chains too) that define the method ``name``: how the Guard
        finds the ones that take part in its rollback or read its update buffer."""
        found: list[Any] = []
        for transform in self.transforms:
            if isinstance(transform, Chain):
                found += transform.with_hook(name)
            elif callable(getattr(transform, name, None)):
                found.append(transform)
        return found

    def apply_(self, grads: Sequence[Tensor], params: Sequence[Tensor] | None = None, *,
               loss: Tensor | None = None) -> GradContext:
        """Run the chain on plain gradients (a loop without the Guard) and write the result.

        A skipped step leaves all-zero gradients (the optimizer's momentum still moves the
        weights; the Guard's step avoids that). Returns the context (norm, threshold, keep).
        """
        ctx = GradContext.from_grads(grads, params, loss=loss)
        self(ctx)
        ctx.keep = ctx.keep * torch.isfinite(ctx.raw_norm)
        ctx.scale = ctx.scale * ctx.keep
        ctx.materialize()
        for g in ctx.grads:  # a non-finite step was skipped: its NaNs must not reach the optimizer
            g.nan_to_num_(0.0, 0.0, 0.0)
        return ctx

    def __iter__(self):
        return iter(self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"chain({', '.join(type(t).__name__ for t in self.transforms)})"

    def state_dict(self) -> dict[str, Any]:
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, t in enumerate(self.transforms):
            if str(i) in state:
                t.load_state_dict(state[str(i)])


def chain(*transforms: GradientTransform) -> Chain:
    """Compose transforms: ``chain(SpikeSkip(), PercentileClip(), ClipByGlobalNorm(1.0))``."""
    return Chain(transforms)
