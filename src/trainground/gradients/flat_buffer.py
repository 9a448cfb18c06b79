"""The flat gradient buffer: every ``param.grad`` a view of one contiguous tensor, and a flat update buffer."""

from __future__ import annotations

from operator import is_
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext
from trainground.gradients.sampled import SAMPLE_MIN_NUMEL, SampledLayout

# Mean elements per parameter tensor below which one kernel over a flat buffer is cheaper than
# one dispatch per tensor (a CPU kernel on 64k floats costs about as much as its launch).
SMALL_TENSOR = 1 << 16


@runtime_checkable
class UpdateObserver(Protocol):
    """Hooks of a transform that reads the update the optimizer applied (the secant trust region).

    The Guard keeps that update, negated, in the flat update buffer and hands it over after the
    step; the transform may keep a reference to it until the next step. An optional ``sample``
    attribute (int, 1 when absent) lets the Guard's CPU path keep it on one element in ``sample``
    only (:mod:`trainground.gradients.sampled`; :meth:`FlatGradients.sample_stride` says where),
    in a compact buffer; the transform reads it through ``HostContext.dot``, which knows that layout.
    """

    def measures(self) -> bool:
        """Whether the coming step's update is needed (the Guard then keeps ``-u``)."""

    def after_step(self, ctx: GradContext | HostContext, neg_update: Tensor) -> None:
        """Called after the optimizer step with ``old - new`` parameters (flat)."""

    def adopt_update_buffer(self, buffer: Tensor) -> None:
        """The Guard (re)allocated its update buffer: keep the saved update there."""


class FlatGradients:
    """Gradients in one buffer (norms, dot products and the clip scale are one kernel each) and
    a same-sized update buffer (``-u`` for the trust region, the old weights while stepping).

    Both need every parameter in one dtype and on one device (``same_layout``); otherwise the
    gradients stay per tensor and there is no update buffer.

    Args:
        params: the parameters the optimizer updates (with ``requires_grad``).
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.same_layout = len({(p.dtype, p.device) for p in params}) == 1 and bool(params)
        self.numel = sum(p.numel() for p in params)
        self.active = False  # param.grad are views of ``flat`` (else autograd's own tensors)
        self.flat: Tensor | None = None
        self.old: Tensor | None = None
        self.views: list[Tensor] = []
        self.old_views: list[Tensor] = []
        self.old_flat_views: list[Tensor] = []  # the same slices of ``old``, 1-D (per-tensor dot products)
        # ((stride, data pointers), one SampledLayout per phase)
        self._sampled: tuple[tuple[int, tuple[int, ...]], list[SampledLayout]] | None = None

    def use(self, active: bool) -> None:
        """At a window's start: switch between the flat buffer and autograd's own tensors."""
        if active != self.active:
            self.active = active
            if not active and self.flat is not None:
                self.flat = None  # back to autograd's own tensors
                for p in self.params:
                    p.grad = None

    def ensure(self) -> bool:
        """Point every ``param.grad`` at a slice of the flat buffer (gradients already there are kept).

        Re-done whenever a grad is no longer our view (the user called ``zero_grad(set_to_none=True)``,
        or the objects were deep-copied).

        Returns:
            True when the buffers were (re)allocated: holders of the old update buffer must move.
        """
        if not self.active:
            return False
        if self.flat is not None and self._ours():
            return False  # the usual case: the grads are still our view objects
        if self.flat is not None and all(
            p.grad is not None and p.grad.data_ptr() == v.data_ptr() for p, v in zip(self.params, self.views, strict=True)
        ) and self.flat.data_ptr() == self.views[0].data_ptr():
            return False
        ref = self.params[0]
        total = self.numel
        flat = torch.zeros(total, dtype=ref.dtype, device=ref.device)
        old = torch.zeros_like(flat)
        views, old_views, offset = [], [], 0
        for p in self.params:
            n = p.numel()
            view = flat[offset:offset + n].view_as(p)
            if p.grad is not None:
                view.copy_(p.grad)
            p.grad = view
            views.append(view)
            old_views.append(old[offset:offset + n].view_as(p))
            offset += n
        if self.old is not None and self.old.numel() == total:
            old.copy_(self.old)
        self.flat, self.views, self.old, self.old_views = flat, views, old, old_views
        self.old_flat_views = [v.view(-1) for v in old_views]
        self._sampled = None
        return True

    def _ours(self) -> bool:
        """Every ``param.grad`` is still the view object of the flat buffer (asked per backward)."""
        return all(map(is_, [p.grad for p in self.params], self.views))

    def ensure_old(self) -> None:
        """The flat update buffer without a flat gradient buffer: allocated on first use."""
        if self.old is None and self.same_layout:
            ref = self.params[0]
            self.old = torch.zeros(self.numel, dtype=ref.dtype, device=ref.device)
            self.old_views, offset = [], 0
            for p in self.params:
                self.old_views.append(self.old[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
            self.old_flat_views = [v.view(-1) for v in self.old_views]
            self._sampled = None

    def sample_stride(self, observers: list[UpdateObserver]) -> int:
        """The observers' coarsest ``sample`` where the Guard's CPU path may read the update
        sampled (no flat gradient buffer, at least :data:`SAMPLE_MIN_NUMEL` parameters), else 1."""
        if self.flat is not None or self.numel < SAMPLE_MIN_NUMEL or not observers:
            return 1
        if not all(p.is_contiguous() for p in self.params):
            return 1  # a sampled view of such a parameter would be a copy, not the weights
        return max(1, min(int(getattr(t, "sample", 1)) for t in observers))

    def sampled(self, params: list[Tensor], stride: int) -> tuple[list[SampledLayout], list[int] | None]:
        """The :class:`~trainground.gradients.sampled.SampledLayout` of each phase (made once per
        stride and storage), and the positions of ``params`` among the parameters (None: all)."""
        storage = tuple(p.data_ptr() for p in self.params)  # a parameter whose data was replaced
        if self._sampled is None or self._sampled[0] != (stride, storage):
            self._sampled = ((stride, storage), [SampledLayout(self.params, stride, k) for k in range(stride)])
        layouts = self._sampled[1]
        if len(params) == len(self.params):
            return layouts, None
        return layouts, [i for i, p in enumerate(self.params) if p.grad is not None]

    def window(self) -> tuple[list[Tensor], list[Tensor]]:
        """(gradients, their parameters): all of them with a flat buffer, else those with a grad."""
        if self.flat is not None:
            return self.views, self.params
        params = [p for p in self.params if p.grad is not None]
        return [p.grad for p in params], params  # type: ignore[misc]

    def scratch(self, params: list[Tensor]) -> list[Tensor]:
        """Views of the flat update buffer aligned with ``params`` (all of them, or those with a grad)."""
        self.ensure_old()
        if self.flat is not None or len(params) == len(self.params):
            return self.old_views
        return [v for p, v in zip(self.params, self.old_views, strict=True) if p.grad is not None]

    def scratch_flat(self, params: list[Tensor]) -> list[Tensor]:
        """:meth:`scratch` as 1-D views (made once, not per step)."""
        self.ensure_old()
        if self.flat is not None or len(params) == len(self.params):
            return self.old_flat_views
        return [v for p, v in zip(self.params, self.old_flat_views, strict=True) if p.grad is not None]

    def zero(self) -> None:
        """Empty the gradients: the flat buffer in one kernel, else ``grad = None``."""
        if self.flat is not None:
            self.flat.zero_()
        else:
            for p in self.params:  # what optimizer.zero_grad(set_to_none=True) does, without its overhead
                p.grad = None

    def foreign(self) -> bool:
        """Whether ``param.grad`` holds gradients that the Guard did not accumulate (called with an
        empty window: anything non-zero there came from someone else's backward)."""
        if self.flat is not None and self._ours():
            return bool(self.flat.any())  # autograd added into our (zeroed) views
        return any(p.grad is not None for p in self.params)

    def state(self) -> Tensor | list[Tensor | None]:
        """The gradients, on the CPU, in the layout they are in (for a checkpoint of an open window)."""
        if self.flat is not None:
            return self.flat.cpu().clone()
        return [None if p.grad is None else p.grad.detach().cpu().clone() for p in self.params]

    def load(self, grads: Tensor | list[Tensor | None] | None) -> None:
        if isinstance(grads, Tensor) and self.flat is not None:
            self.flat.copy_(grads)
        elif isinstance(grads, list):
            for p, g in zip(self.params, grads, strict=True):
                p.grad = None if g is None else g.to(p.device).clone()


def wants_flat(buffers: FlatGradients, *, cpu: bool, k: int, adaptive: bool, scaler: bool, host: bool,
               observers: bool) -> bool:
    """Whether the gradients should live in the flat buffer for the coming windows.

    On a CPU with K = 1 the flat buffer costs two passes per step (zeroing it, and autograd
    adding into it instead of handing over its own tensor). Only the trust region's dot
    products gain from it, and only when the tensors are small: then one kernel over the
    buffer beats a dispatch per tensor (84k MLP: 1.29x vs 1.37x the plain step; 1M MLP,
    tensors of ~130k elements: 1.30x vs 1.24x, benchmarks/step_cost.py on a shared CPU).
    Elsewhere (CUDA, K > 1, an AMP scaler, a chain without a float path) it always pays.
    """
    small = buffers.numel <= SMALL_TENSOR * max(1, len(buffers.params))
    return buffers.same_layout and (not cpu or k > 1 or adaptive or scaler or not host or (small and observers))
