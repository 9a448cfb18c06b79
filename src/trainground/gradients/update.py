"""Applying (or not) an optimizer update cheaply: lr-scaled steps, exact skips, lazy statistics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

# Optimizers whose update is linear in the learning rate given their state (the state itself
# does not depend on lr): scaling every group's lr by s scales the applied update by exactly s,
# decoupled weight decay included (AdamW: p *= 1 - s*lr*wd, then p -= s*lr*m/(sqrt(v)+eps)).
# Exact types only: a subclass may override ``step``.
LR_LINEAR: tuple[type, ...] = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad,
    torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adadelta,
)


def lr_scalable(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`step_scaled` can scale this optimizer's update through its learning rates."""
    return type(optimizer) in LR_LINEAR and all(type(g["lr"]) is float for g in optimizer.param_groups)


def step_scaled(optimizer: torch.optim.Optimizer, scale: float) -> bool:
    """``optimizer.step()`` with its update multiplied by ``scale``, without touching the weights twice.

    For the optimizers in :data:`LR_LINEAR` with float learning rates the lr of every group is
    multiplied by ``scale`` for this one step (and restored). Otherwise the plain step runs and
    the caller must scale the update itself (interpolate towards the old weights).

    Returns:
        True when the update was scaled here (or ``scale`` is 1).
    """
    if scale == 1.0:
        optimizer.step()
        return True
    if not lr_scalable(optimizer):
        optimizer.step()
        return False
    groups = optimizer.param_groups
    saved = [g["lr"] for g in groups]
    try:
        for g in groups:
            g["lr"] = g["lr"] * scale
        optimizer.step()
    finally:
        for g, lr in zip(groups, saved, strict=True):
            g["lr"] = lr
    return True


def skip_step_(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor],
               old: Sequence[Tensor] | None = None) -> None:
    """A skipped step, as the tensor path does it: the optimizer sees an all-zero gradient (its
    moments decay one step, as with a zero-multiplier step) and the weights come back exactly.

    Args:
        optimizer: the optimizer to step.
        params: every parameter it may change.
        grads: their gradients (zeroed here; NaN/inf are gone afterwards).
        old: scratch tensors shaped like ``params`` (allocated when omitted).
    """
    with torch.no_grad():
        torch._foreach_zero_(list(grads))
        if old is None:
            old = [p.detach().clone() for p in params]
        else:
            torch._foreach_copy_(list(old), list(params))
        optimizer.step()
        torch._foreach_copy_(list(params), list(old))


class FloatStats(Mapping[str, Tensor]):
    """The Guard's per-step scalars kept as floats; a tensor is made only when a key is read
    (the metrics writer reads four per step; a loop without one pays nothing)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, float]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Tensor:
        return torch.tensor(self._values[key], dtype=torch.float32)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def floats(self) -> dict[str, float]:
        return dict(self._values)
