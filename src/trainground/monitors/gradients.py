"""Per-layer gradient norm and update-to-weight ratio, kept on the device between computes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from trainground.monitors.base import Monitor
from trainground.monitors.table import empty_table, long_table


def parameter_layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Modules that own parameters directly, with those parameters, in ``named_modules`` order.

    A "layer" is such a module (``body.0`` for the first Linear of an MLP); the root module's
    own parameters are called ``model``.
    """
    layers = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        if params:
            layers.append((name or "model", params))
    return layers


def layer_norms(tensors: Sequence[Tensor], layer_of: Tensor, num_layers: int) -> Tensor:
    """L2 norm per layer of ``tensors`` (each belongs to layer ``layer_of[i]``), one fused pass.

    Returns:
        ``[num_layers]`` float32 on the tensors' device; no host sync.
    """
    if not tensors:
        return torch.zeros(num_layers)
    per_tensor = torch.stack(torch._foreach_norm(list(tensors))).float()
    squares = torch.zeros(num_layers, device=per_tensor.device).index_add_(0, layer_of, per_tensor.square())
    return squares.sqrt()


class GradientMonitor(Monitor):
    """Per layer: gradient norm, weight norm and the norm of the last optimizer update.

    Call :meth:`update` after ``backward`` (gradients in ``param.grad``) and
    :meth:`update_after_step` after ``optimizer.step()``. The update-to-weight ratio
    ``||w_after - w_before|| / ||w_before||`` is the scale-free size of a step: Karpathy's
    rule of thumb puts a healthy one near 1e-3. Both calls stay on the device; the weight
    copy they need exists only between the two calls of a sampled step.

    Args:
        model: the network whose parameters are watched.

    References:
        Karpathy, "CS231n: Neural Networks Part 3" (ratio of updates to weights ~1e-3).
    """

    STATS = ("grad_norm", "weight_norm", "update_norm")

    def __init__(self, model: nn.Module) -> None:
        self.layers = parameter_layers(model)
        self.names = [name for name, _ in self.layers]
        self.params = [p for _, ps in self.layers for p in ps]
        self._layer_index = np.array([i for i, (_, ps) in enumerate(self.layers) for _ in ps], dtype=np.int64)
        self._zero: Tensor | None = None
        self.numel = [sum(p.numel() for p in ps) for _, ps in self.layers]
        self.ndim = [max(p.ndim for p in ps) for _, ps in self.layers]
        self._before: list[Tensor] | None = None
        # The weights' copy lives in one buffer kept between sampled steps (a model's size of
        # memory, which every sampled step needed anyway).
        self._buffer: list[Tensor] | None = None
        self._pending: tuple[int, int, list[Tensor], float, list[int], list[int]] | None = None
        # Per sampled step: step, epoch, per-parameter norms, trainable, has_grad, host grad scale.
        self._rows: list[tuple[int, int, Tensor, list[int], list[int], float]] = []

    def update(self, step: int, epoch: int, *, grad_scale: Tensor | float = 1.0) -> None:
        """Read gradients (call after backward) and keep a copy of the weights for the update.

        Norms are kept per parameter on the device (a few fused calls); summing them per
        layer happens on the host in :meth:`compute`, where it costs nothing.

        Args:
            step, epoch: where the loop is.
            grad_scale: how many times ``param.grad`` exceeds the true gradient (e.g. a
                loss scale, or the sample count of an accumulation window); norms are divided by it.
        """
        if not self.params:
            return
        with torch.no_grad():
            if self._zero is None or self._zero.device != self.params[0].device:
                self._zero = torch.zeros((), device=self.params[0].device)
            grads = [p.grad if p.grad is not None else self._zero for p in self.params]
            grad_norms = list(torch._foreach_norm(grads))
            if isinstance(grad_scale, Tensor):  # a device scale (AMP): divide on the device
                grad_norms = list(torch.stack(grad_norms).float() / grad_scale)
                grad_scale = 1.0
            weights = [p.detach() for p in self.params]
            buffer = self._buffer
            if buffer is None or any(b.shape != w.shape or b.dtype != w.dtype or b.device != w.device
                                     for b, w in zip(buffer, weights, strict=True)):
                buffer = self._buffer = [w.clone() for w in weights]
            else:  # the same buffer every sampled step: a copy without an allocation (and its page faults)
                torch._foreach_copy_(buffer, weights)
            self._before = buffer
        trainable = [int(all(p.requires_grad for p in ps)) for _, ps in self.layers]
        has_grad = [int(any(p.grad is not None for p in ps)) for _, ps in self.layers]
        self._pending = (step, epoch, grad_norms, float(grad_scale), trainable, has_grad)

    def update_after_step(self) -> None:
        """Measure how far the optimizer moved each layer (call after ``optimizer.step()``)."""
        if self._pending is None or self._before is None:
            return
        step, epoch, grad_norms, grad_scale, trainable, has_grad = self._pending
        with torch.no_grad():
            weights = [p.detach() for p in self.params]
            torch._foreach_sub_(self._before, weights)  # now -(update), in place
            # The ratio's denominator is the weight norm after the step: it differs from the
            # norm before by at most the update norm, i.e. by a relative ratio^2 / 2 order.
            norms = torch._foreach_norm(weights + list(self._before))
            # [grad | weight | update] x params in one stack: the only tensor op per row
            per_param = torch.stack([*grad_norms, *norms]).float()
        self._rows.append((step, epoch, per_param, trainable, has_grad, grad_scale))
        self._before, self._pending = None, None

    def discard(self) -> None:
        """Drop what :meth:`update` took when no optimizer step follows it."""
        self._before, self._pending = None, None

    @property
    def pending(self) -> int:
        """Sampled steps held on the device since the last reset."""
        return len(self._rows)

    def compute(self) -> pd.DataFrame:
        """Long table ``step, epoch, layer, stat, value`` (one host copy for all pending steps)."""
        if not self._rows:
            return empty_table()
        per_param = torch.stack([r[2] for r in self._rows]).cpu().double().numpy()  # [steps, 3 * params]
        per_param = per_param.reshape(len(self._rows), 3, -1).copy()
        per_param[:, 0] /= np.array([r[5] for r in self._rows])[:, None]  # host grad scales (1.0 mostly)
        per_param **= 2
        layer_sq = np.zeros((len(self._rows), 3, len(self.names)))
        np.add.at(layer_sq, (slice(None), slice(None), self._layer_index), per_param)
        grad, weight, upd = np.sqrt(layer_sq[:, 0]), np.sqrt(layer_sq[:, 1]), np.sqrt(layer_sq[:, 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(weight > 0, upd / weight, np.nan)
        shape = (len(self._rows), len(self.names))
        stats = {
            "grad_norm": grad, "weight_norm": weight, "update_norm": upd, "update_ratio": ratio,
            "trainable": np.array([r[3] for r in self._rows], dtype=float),
            "has_grad": np.array([r[4] for r in self._rows], dtype=float),
            "numel": np.broadcast_to(np.asarray(self.numel, dtype=float), shape),
            "ndim": np.broadcast_to(np.asarray(self.ndim, dtype=float), shape),
        }
        return long_table([r[0] for r in self._rows], [r[1] for r in self._rows], self.names, stats)

    def reset(self) -> None:
        self._rows.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [(s, e, v.cpu(), t, g, c) for s, e, v, t, g, c in self._rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.params[0].device if self.params else torch.device("cpu")
        # rows of older checkpoints have no grad scale column: their norms were already divided
        self._rows = [(r[0], r[1], r[2].to(device), r[3], r[4], r[5] if len(r) > 5 else 1.0)
                      for r in state.get("rows", [])]
