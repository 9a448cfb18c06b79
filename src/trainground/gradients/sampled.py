"""The sampled secant's layout: one element in ``stride`` of every parameter, kept compact.

On a CPU the secant trust region's passes over the weights (a copy, a difference, two dot
products) are memory-bound once the parameters leave the cache: at 1M parameters they were most
of the Guard's cost per step. The secant's two sums, ``C = <g_{t+1} - g_t, u_t>`` and
``D = -<g_t, u_t>``, are sums over coordinates, and the trust region reads only their ratio (and
a z-test on ``C - target * D``, scale-free too). Summed over one coordinate in ``stride`` both
estimate ``1/stride`` of their full value, so the ratio is estimated without that factor; the
sampling adds noise to a ratio of EMAs that already average the mini-batch noise, and it reads
``1/stride`` of the bytes.

Which elements: every ``stride``-th block of :data:`SAMPLE_BLOCK` elements of each tensor (the
last partial block left out), or every ``stride``-th element of a tensor too small to hold
``stride`` blocks, so every element has about the same chance to be in; the starting block (the
phase) moves by one each measured step, so every element is read once every ``stride`` steps.
The sampled update and gradients are kept in two compact buffers, so each dot product is one kernel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Parameters are read in blocks of this many elements: 16 float32, one 64-byte cache line, the
# smallest block whose skipping saves memory traffic. Small blocks keep every row of a weight
# matrix (rows of >= 128 elements) in every phase, so every unit and every class is seen at every
# step; blocks of 1,024 (a page) cost ~3% less per step on the 1M MLP but read, for a (10, 1024)
# output layer, one or two classes' rows per step, and lost more runs of benchmark C at 1.1M
# parameters (benchmarks/README.md "The sampled secant") ...
SAMPLE_BLOCK = 1 << 4
# ... and only from this many parameters on (1 MiB of float32, a typical CPU's L2). Below it the
# passes run from cache and cost their dispatch, which sampling does not cut: measured on the 85k
# MLP, copy + difference + two dot products took 107 us sampled against 77 us whole.
SAMPLE_MIN_NUMEL = 1 << 18


def sample_geometry(numel: int, stride: int, phase: int = 0) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(size, strides, offset) of phase ``phase`` of the sample of a contiguous tensor of ``numel``
    elements (module docstring): blocks ``phase``, ``phase + stride``, ... (or those elements)."""
    if numel < SAMPLE_BLOCK * stride:
        return (max(0, math.ceil((numel - phase) / stride)),), (stride,), phase
    blocks = numel // SAMPLE_BLOCK
    return (max(0, math.ceil((blocks - phase) / stride)), SAMPLE_BLOCK), (SAMPLE_BLOCK * stride, 1), phase * SAMPLE_BLOCK


def sample_view(t: Tensor, stride: int, phase: int = 0) -> Tensor:
    """Phase ``phase`` of the sample of ``t`` (module docstring): a view of a contiguous ``t``, else of a copy."""
    t = t.contiguous()
    size, strides, offset = sample_geometry(t.numel(), stride, phase)
    return t.as_strided(size, strides, t.storage_offset() + offset)


class SampledLayout:
    """Phase ``phase`` of the sampled views of a list of contiguous parameters, with two compact
    buffers aligned to them: ``update`` (``-u`` on the sample, what the secant keeps) and ``grad``
    (the gradients' sample, gathered for each dot product). The Guard keeps one layout per phase
    and measures step t on phase ``t mod stride``, so every element is read once every ``stride``
    steps: a fixed sample would never see an instability confined to the elements it leaves out
    (one layer's rows, a few units), a rotating one sees it within ``stride`` steps.

    Args:
        params: the parameters, all contiguous, of one dtype and device.
        stride: keep one element in ``stride``.
        phase: which of the ``stride`` disjoint samples (0 <= phase < stride).
    """

    def __init__(self, params: list[Tensor], stride: int, phase: int = 0) -> None:
        self.stride, self.phase = stride, phase
        self.geometry = [sample_geometry(p.numel(), stride, phase) for p in params]
        self.params = [p.detach().as_strided(size, strides, p.storage_offset() + offset)
                       for p, (size, strides, offset) in zip(params, self.geometry, strict=True)]
        sizes = [v.numel() for v in self.params]
        ref = params[0]
        self.update = torch.zeros(sum(sizes), dtype=ref.dtype, device=ref.device)
        self.grad = torch.zeros_like(self.update)
        self.update_views = [s.view(v.shape) for s, v in zip(self.update.split(sizes), self.params, strict=True)]
        self.grad_views = [s.view(v.shape) for s, v in zip(self.grad.split(sizes), self.params, strict=True)]

    def views(self, tensors: list[Tensor], index: list[int] | None = None) -> list[Tensor]:
        """The sample of parameter-shaped ``tensors`` (aligned with the parameters, or ``index``)."""
        geometry = self.geometry if index is None else [self.geometry[i] for i in index]
        return [t.as_strided(size, strides, t.storage_offset() + offset) if t.is_contiguous()
                else sample_view(t, self.stride, self.phase)
                for t, (size, strides, offset) in zip(tensors, geometry, strict=True)]

    def pick(self, views: list[Tensor], index: list[int] | None) -> list[Tensor]:
        """``views`` (one per parameter) at ``index`` (None: all of them)."""
        return views if index is None else [views[i] for i in index]

    def gather(self, grads: list[Tensor], index: list[int] | None = None) -> None:
        """Copy the sample of ``grads`` (aligned with the parameters, or with ``index``: the
        positions of the parameters that have a gradient; the others count 0) into ``grad``."""
        if index is not None:
            self.grad.zero_()
        torch._foreach_copy_(self.pick(self.grad_views, index), self.views(grads, index))

    def dot(self) -> float:
        """``<gathered gradients, update>`` (one kernel over the compact buffers)."""
        return float(torch.dot(self.grad, self.update))
