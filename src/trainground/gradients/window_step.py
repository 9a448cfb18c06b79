"""One closed window's optimizer step: transforms, then the update applied, skipped or scaled.

Two paths with the same maths. On a CPU device a host read costs nothing while each 0-dim
tensor op costs microseconds, so :func:`host_step` reads the global norm once and runs the
chain in floats. Elsewhere (CUDA, or a chain with a transform that has no float path)
:func:`tensor_step` keeps every decision in tensors: no host sync per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from trainground.gradients.amp import LossScaling
from trainground.gradients.chain import Chain
from trainground.gradients.context import GradContext, HostContext, host_norm
from trainground.gradients.flat_buffer import FlatGradients, UpdateObserver
from trainground.gradients.update import lr_scalable, skip_step_, step_scaled


class StepResult(NamedTuple):
    """What one step did: floats from the host path, 0-dim tensors from the tensor path."""

    norm: Any  # the window's mean-gradient norm before any transform
    threshold: Any
    keep: Any  # 1.0 taken, 0.0 skipped
    update_scale: Any
    loss: Any  # NaN when the loss is not known (external gradients)


def host_step(chain: Chain, optimizer: torch.optim.Optimizer, buffers: FlatGradients, *, base: float,
              loss: float | None, observers: Sequence[UpdateObserver]) -> StepResult:
    """The CPU step: one read of the norm, the chain in floats, the weights touched once.

    A kept step's trust-region scale is applied through the learning rates when the optimizer
    allows it (``update.LR_LINEAR``), else by interpolating towards the old weights. A skipped
    step gives the optimizer a zero gradient and restores the weights exactly.

    Args:
        base: multiplier from the accumulated gradients to the window's mean gradient.
        loss: the window's mean loss (None: not known).
        observers: the chain's transforms that read the applied update (only with one layout).
    """
    grads, params = buffers.window()
    flat = buffers.flat
    ctx = HostContext(grads, params, flat, raw_norm=host_norm(grads, flat), scale=base, base_scale=base,
                      loss=loss, lr=float(optimizer.param_groups[0]["lr"]))
    window_norm = ctx.norm
    trust = bool(observers)
    measure = trust and any(t.measures() for t in observers)  # this step's update feeds a secant
    layout = None  # the sampled secant's (gradients/sampled.py), where the passes are memory-bound
    if trust and flat is None:
        stride = buffers.sample_stride(list(observers))
        if stride == 1:
            ctx.update_views = buffers.scratch_flat(params)  # per-tensor dot products
            ctx.update_buffer = buffers.old
        else:
            layouts, ctx.sampled_index = buffers.sampled(params, stride)
            ctx.sampled = layouts
            phase = next((int(t.sample_phase()) for t in observers if hasattr(t, "sample_phase")), 0) % stride
            layout = layouts[phase]  # where this step's update is kept; the last one's is the phase before
            for t in observers:
                t.adopt_update_buffer(layouts[phase - 1].update)  # a resumed secant's saved update (no-op after)
    chain.host(ctx)
    keep = ctx.keep > 0 and math.isfinite(window_norm)
    if keep:
        ctx.materialize()  # finite norm: no NaN to clean; scale 1: no pass at all
        s = ctx.update_scale
        whole = s != 1.0 and not lr_scalable(optimizer)  # the scale is applied by a lerp: every old weight
        old = buffers.scratch(params) if (measure and layout is None) or whole else None
        sampled = measure and layout is not None  # this step's -u kept on the sample (gradients/sampled.py)
        if sampled:
            index = ctx.sampled_index
            kept = layout.pick(layout.update_views, index)  # type: ignore[union-attr]
            if index is not None:
                layout.update.zero_()  # type: ignore[union-attr]  # a parameter without a grad did not move
        if sampled and old is None:
            mine = layout.pick(layout.params, index)  # type: ignore[union-attr]
            with torch.no_grad():
                torch._foreach_copy_(kept, mine)
                step_scaled(optimizer, s)  # the lr carries the scale (not `whole`)
                torch._foreach_sub_(kept, mine)  # -(applied update), on the sample
        elif old is None:
            step_scaled(optimizer, s)  # the common case: nothing but the optimizer touches the weights
        else:
            with torch.no_grad():
                if measure and flat is None and len(params) < len(buffers.params):
                    buffers.old.zero_()  # type: ignore[union-attr]  # a parameter without a grad did not move
                torch._foreach_copy_(old, params)
                if not step_scaled(optimizer, s):
                    torch._foreach_lerp_(params, old, 1.0 - s)
                if measure:
                    torch._foreach_sub_(old, params)  # old <- -(applied update)
                if sampled:
                    torch._foreach_copy_(kept, layout.views(old, index))  # type: ignore[union-attr]  # its sample
    else:
        ctx.keep = 0.0
        skip_step_(optimizer, params, grads, buffers.scratch(params) if buffers.same_layout else None)
        if trust:
            (buffers.old if layout is None else layout.update).zero_()  # type: ignore[union-attr]  # nothing applied
    if trust:
        chain.after_step(ctx, buffers.old if layout is None else layout.update)  # type: ignore[arg-type]
    return StepResult(window_norm, ctx.threshold, 1.0 if keep else 0.0, ctx.update_scale,
                      math.nan if loss is None else loss)


def tensor_step(chain: Chain, optimizer: torch.optim.Optimizer, buffers: FlatGradients, amp: LossScaling, *,
                base: float, loss: Tensor | None, scaled: bool) -> StepResult:
    """The tensor step (CUDA, or a chain with a transform that has no float path): no host sync.

    With one layout the old weights are kept and ``new <- new + (1 - s * keep) * (old - new)``
    applies the trust region's share of the update, all of it for a skipped step (the weights
    come back exactly).

    Args:
        base: multiplier from the accumulated gradients to the window's mean gradient.
        loss: the window's mean loss (0-dim tensor; None: not known).
        scaled: the gradients went through the AMP loss scale (step through the scaler).
    """
    grads, params = buffers.window()
    ctx = GradContext.from_grads(grads, params, flat=buffers.flat, loss=loss)
    ctx.base_scale = torch.full((), base, device=ctx.raw_norm.device)
    ctx.scale = ctx.base_scale.clone()
    ctx.lr = float(optimizer.param_groups[0]["lr"])
    window_norm = ctx.norm
    chain(ctx)
    ctx.keep = ctx.keep * torch.isfinite(window_norm)
    ctx.scale = ctx.scale * ctx.keep
    ctx.materialize()
    if buffers.flat is not None:
        buffers.flat.nan_to_num_(0.0, 0.0, 0.0)
    else:
        for g in grads:
            g.nan_to_num_(0.0, 0.0, 0.0)
    exact = buffers.same_layout
    old = buffers.scratch(params) if exact else []
    if exact:
        with torch.no_grad():
            torch._foreach_copy_(old, params)
    amp.step(optimizer, scaled=scaled)
    if exact:
        with torch.no_grad():
            torch._foreach_lerp_(params, old, 1.0 - ctx.update_scale * ctx.keep)
            if buffers.flat is not None:
                torch._foreach_sub_(old, params)  # old <- -(applied update)
        if buffers.flat is not None:
            chain.after_step(ctx, buffers.old)  # type: ignore[arg-type]
    return StepResult(window_norm, ctx.threshold, ctx.keep, ctx.update_scale,
                      torch.full_like(window_norm, math.nan) if ctx.loss is None else ctx.loss)
