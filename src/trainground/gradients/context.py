"""What a gradient transform sees: the gradients, a lazily applied scale, the global norm, the skip flag."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from trainground.gradients.sampled import SampledLayout


def global_norm(grads: Sequence[Tensor], flat: Tensor | None = None) -> Tensor:
    """L2 norm of all ``grads`` together, as a float32 0-dim tensor (no host sync).

    Args:
        grads: gradient tensors (``None`` entries are not allowed; filter them first).
        flat: one contiguous tensor the grads are views of; when given, a single kernel reads it.

    Returns:
        The global norm; ``inf``/``nan`` when a gradient is not finite.
    """
    if flat is not None:
        return torch.linalg.vector_norm(flat, dtype=torch.float32)
    if not grads:
        return torch.zeros((), dtype=torch.float32)
    norms = torch._foreach_norm(list(grads))
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def finite_or(value: Tensor, fallback: Tensor) -> Tensor:
    """``value`` where it is finite, else ``fallback``: how a history refuses a NaN/inf entry."""
    return torch.where(torch.isfinite(value), value, fallback)


@dataclass
class GradContext:
    """One optimizer step's gradients as they pass through a chain of transforms.

    Norm-based clippers do not touch the gradients: they multiply ``scale`` and the chain
    applies it once at the end (one pass over the gradients for any number of clippers).
    Transforms that need the actual values (value clip, AGC) call :meth:`materialize` first.

    Attributes:
        grads: the gradient tensors, one per parameter with a gradient (modified in place).
        params: the parameters, aligned with ``grads``.
        flat: a contiguous tensor the grads are views of, or None.
        scale: pending multiplier of the gradients (0-dim tensor).
        raw_norm: the global norm before any transform (after unscaling/averaging).
        loss: the window's mean loss (0-dim tensor) or None.
        keep: 1.0 to take the step, 0.0 to skip it (a tensor: no host sync decides it).
        threshold: the tightest clip threshold any transform applied this step (inf if none).
        update_scale: multiplier of the optimizer's update (trust region), 1.0 unless a transform sets it.
        lr: learning rate of the first parameter group (Python float, read before the step).
    """

    grads: list[Tensor]
    params: list[Tensor]
    flat: Tensor | None = None
    scale: Tensor = field(default_factory=lambda: torch.ones(()))
    raw_norm: Tensor = field(default_factory=lambda: torch.zeros(()))
    loss: Tensor | None = None
    keep: Tensor = field(default_factory=lambda: torch.ones(()))
    threshold: Tensor = field(default_factory=lambda: torch.tensor(float("inf")))
    update_scale: Tensor = field(default_factory=lambda: torch.ones(()))
    lr: float = 0.0
    # Multiplier from the accumulated gradient buffer to the true mean gradient (1/samples),
    # and the total multiplier that ended up applied to the buffer (set by ``materialize``).
    base_scale: Tensor = field(default_factory=lambda: torch.ones(()))
    applied_scale: Tensor = field(default_factory=lambda: torch.ones(()))

    @property
    def norm(self) -> Tensor:
        """The global norm the gradients will have once ``scale`` is applied."""
        return self.raw_norm * self.scale

    def clip_to(self, threshold: Tensor) -> None:
        """Scale the gradients down so their global norm is at most ``threshold``."""
        factor = torch.clamp(threshold / (self.norm + 1e-12), max=1.0)
        self.scale = self.scale * factor
        self.threshold = torch.minimum(self.threshold, threshold)

    def materialize(self) -> None:
        """Apply the pending ``scale`` to the gradients (one pass), then carry the norm along."""
        self.applied_scale = self.applied_scale * self.scale
        if self.flat is not None:
            self.flat.mul_(self.scale)
        else:
            torch._foreach_mul_(self.grads, self.scale)
        # ||c * g|| = c * ||g||: no second pass over the gradients to learn the new norm.
        self.raw_norm = self.norm
        self.scale = torch.ones_like(self.scale)

    @classmethod
    def from_grads(cls, grads: Sequence[Tensor], params: Sequence[Tensor] | None = None, **kw: Any) -> GradContext:
        """A context over plain gradient tensors (functional use and tests)."""
        grads = list(grads)
        ref = grads[0] if grads else torch.zeros(())
        ctx = cls(grads=grads, params=list(params) if params is not None else [], **kw)
        ctx.scale = torch.ones((), device=ref.device)
        ctx.keep = torch.ones((), device=ref.device)
        ctx.threshold = torch.full((), float("inf"), device=ref.device)
        ctx.update_scale = torch.ones((), device=ref.device)
        ctx.base_scale = torch.ones((), device=ref.device)
        ctx.applied_scale = torch.ones((), device=ref.device)
        ctx.raw_norm = global_norm(grads, ctx.flat)
        return ctx


@dataclass(slots=True)
class HostContext:
    """:class:`GradContext` with every scalar a Python float: the Guard's path on a CPU device.

    On a CPU a host read costs nothing, while each 0-dim tensor op costs microseconds of
    dispatch (a hundred of them doubled the step of a small MLP). So the Guard reads the norm
    once and the transforms do their bookkeeping in floats (``transform.host(ctx)``); only
    the gradient passes (scale, dot products) stay tensor ops. The maths is the same as the
    tensor path's; the floats are float64, so the two paths agree to rounding, not bit for bit.

    Attributes: as :class:`GradContext`, as floats.
    """

    grads: list[Tensor]
    params: list[Tensor]
    flat: Tensor | None = None
    raw_norm: float = 0.0
    scale: float = 1.0
    loss: float | None = None
    keep: float = 1.0
    threshold: float = math.inf
    update_scale: float = 1.0
    lr: float = 0.0
    base_scale: float = 1.0
    applied_scale: float = 1.0
    # Without a flat gradient buffer: 1-D views of the Guard's flat update buffer aligned with
    # ``grads``, so a transform can take <grads, update> tensor by tensor (see :meth:`dot`).
    update_views: list[Tensor] | None = None
    update_buffer: Tensor | None = None  # the flat tensor ``update_views`` are views of
    # The sampled secant (gradients/sampled.py): one layout per phase; a dot product with a
    # phase's ``update`` reads the same sample of the gradients. ``sampled_index``: the positions
    # of ``grads`` among the layouts' parameters (None: all of them).
    sampled: list[SampledLayout] | None = None
    sampled_index: list[int] | None = None
    # (phase, ``applied_scale``) of the last gathered sample of the gradients: a second dot product
    # on that phase reads the same gradients unless a clip scaled them since.
    sampled_gathered: tuple[int, float] | None = None

    @property
    def norm(self) -> float:
        return self.raw_norm * self.scale

    def reads(self, flat_update: Tensor) -> bool:
        """Whether :meth:`dot` can read ``flat_update`` in this step's layout (a secant kept before
        the Guard switched between the flat, per-tensor and sampled layouts cannot be)."""
        if self.flat is not None:
            return flat_update.numel() == self.flat.numel()
        if self.sampled is not None:
            return any(flat_update is layout.update for layout in self.sampled)
        return self.update_views is not None and flat_update is self.update_buffer

    def dot(self, flat_update: Tensor) -> float:
        """``<gradients, flat_update>`` for a vector laid out like the Guard's update buffer."""
        if self.flat is not None:
            return float(torch.dot(self.flat, flat_update))
        for layout in self.sampled or ():
            if flat_update is layout.update:
                key = (layout.phase, self.applied_scale)
                if self.sampled_gathered != key:
                    layout.gather(self.grads, self.sampled_index)
                    self.sampled_gathered = key
                return layout.dot()
        if self.update_views is None or flat_update is not self.update_buffer:
            raise ValueError("HostContext.dot needs a flat gradient buffer, or update_views of flat_update")
        # The views alias ``flat_update`` (the Guard's buffer); one dot per tensor, one read.
        return float(torch.stack([torch.dot(g.reshape(-1), v) for g, v in zip(self.grads, self.update_views,
                                                                                strict=True)]).sum())

    def clip_to(self, threshold: float) -> None:
        factor = threshold / (self.norm + 1e-12)
        if factor < 1.0 or math.isnan(factor):  # NaN stays NaN, as torch.clamp leaves it
            self.scale = self.scale * factor
        self.threshold = min(self.threshold, threshold)

    def materialize(self) -> None:
        """Apply the pending ``scale`` to the gradients (one pass, none when it is 1)."""
        if self.scale != 1.0:
            if self.flat is not None:
                self.flat.mul_(self.scale)
            else:
                torch._foreach_mul_(self.grads, self.scale)
        self.applied_scale = self.applied_scale * self.scale
        self.raw_norm = self.norm
        self.scale = 1.0


def host_norm(grads: Sequence[Tensor], flat: Tensor | None = None) -> float:
    """Global L2 norm as a float: one kernel (flat) or one ``_foreach_norm`` plus one read."""
    if flat is not None:
        return float(torch.linalg.vector_norm(flat, dtype=torch.float32))
    if not grads:
        return 0.0
    total = 0.0
    for norm in torch._foreach_norm(list(grads)):  # each read as is: no stack, no list of floats
        value = float(norm)
        total += value * value
    return math.sqrt(total)


class ScalarState:
    """Mixin for a transform whose scalar state lives in tensors (device path) or floats (host path).

    ``_fields`` maps attribute names to dtypes. The state follows the path that uses it: the
    first ``host`` call turns the tensors into Python numbers (one read), the first tensor call
    turns them back. ``state_dict`` always holds CPU tensors, so checkpoints do not depend on it
    (float64 ones from the host path, so a resumed run continues with exactly the same numbers).
    """

    _fields: ClassVar[dict[str, torch.dtype]] = {}
    _on_host: bool = False

    def _host_state(self) -> None:
        if not self._on_host:
            for name in self._fields:
                setattr(self, name, getattr(self, name).tolist())
            self._on_host = True

    def _device_state(self, device: torch.device) -> None:
        if self._on_host:
            for name, dtype in self._fields.items():
                setattr(self, name, torch.tensor(getattr(self, name), dtype=dtype, device=device))
            self._on_host = False
        else:
            for name in self._fields:
                value = getattr(self, name)
                if value.device != device:
                    setattr(self, name, value.to(device))

    def _state_tensor(self, name: str) -> Tensor:
        value = getattr(self, name)
        if self._on_host:
            dtype = self._fields[name]
            return torch.tensor(value, dtype=torch.float64 if dtype.is_floating_point else dtype)
        return value.detach().cpu().clone()

    def _load_tensors(self, state: dict[str, Any]) -> None:
        for name in self._fields:
            setattr(self, name, state[name].clone())
        self._on_host = False


@runtime_checkable
class GradientTransform(Protocol):
    """A step of the chain: looks at (and may change) the gradients of one optimizer step.

    ``__call__`` runs after unscaling/averaging and before the optimizer step. A transform
    that controls the update itself may also define ``after_step(ctx, neg_update)``, called
    after the step with ``old - new`` parameters (flat, the update that was applied, negated).
    """

    def __call__(self, ctx: GradContext) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
