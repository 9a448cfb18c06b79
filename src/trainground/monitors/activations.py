"""Per-layer activation statistics through forward hooks: dead units, saturation, mean/variance."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from trainground.monitors.base import Monitor
from trainground.monitors.table import empty_table, long_table

ActivationKind = Literal["rectifier", "bounded"]

# Rectifier-like units are "active" where their output is > 0; a unit that never is over
# many samples passes no gradient to its input weights (a dead ReLU).
_RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Hardswish, nn.Softplus)
# Bounded units saturate: near their bounds the derivative is ~0 and learning stalls.
# Saturation margins: sigmoid(x) outside [0.01, 0.99] has sigma' < 0.0099 (< 4 % of its
# peak 0.25); tanh outside [-0.99, 0.99] has tanh' < 0.02 (2 % of its peak 1). One
# margin rule for both: within 1 % of the output range from a bound.
_BOUNDS: dict[type[nn.Module], tuple[float, float]] = {
    nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.Hardsigmoid: (0.0, 1.0),
    nn.Softsign: (-1.0, 1.0),
}
SATURATION_MARGIN = 0.01


def activation_kind(module: nn.Module) -> ActivationKind | None:
    """``"rectifier"``, ``"bounded"`` or None (not an activation this monitor understands)."""
    if isinstance(module, tuple(_BOUNDS)):
        return "bounded"
    if isinstance(module, _RECTIFIERS):
        return "rectifier"
    return None


def batch_activation_stats(out: Tensor, kind: ActivationKind, bounds: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """Statistics of one activation output ``[N, units, ...]`` (units on dim 1).

    Returns:
        ``[mean, var, inactive_fraction, saturated_fraction]`` as one float tensor, and a
        bool ``[units]`` tensor: which units were active (> 0) on some element of the batch.
        Stays on the device.
    """
    x = out.detach()
    active = x > 0
    # E[x] and E[x^2] are two plain reductions; torch.var_mean is several times slower on CPU.
    mean = x.mean()
    var = (x.square().mean() - mean.square()).clamp_min(0)
    inactive = 1.0 - active.float().mean()
    if kind == "bounded" and bounds is not None:
        lo, hi = bounds
        margin = SATURATION_MARGIN * (hi - lo)
        saturated = ((x <= lo + margin) | (x >= hi - margin)).float().mean()
    else:
        saturated = torch.zeros((), device=x.device)
    # Units on dim 1; reduce the other dims without the copy a transpose would make.
    ever = active.flatten(2).any(dim=2) if x.ndim > 2 else active
    ever = ever.any(dim=0) if x.ndim > 1 else ever
    return torch.stack([mean, var, inactive, saturated]).float(), ever


def batch_activation_sums(out: Tensor, kind: ActivationKind, bounds: tuple[float, float] | None,
                          ever: bool = True) -> tuple[list[Tensor], Tensor | None]:
    """The sums behind :func:`batch_activation_stats`, in as few tensor operations as possible
    (the monitor's hot path; the division by the element count happens on the host).

    Returns:
        ``[sum, l2_norm, active_count, saturated_count]`` as 0-d tensors (``saturated_count``
        only for bounded units; ``l2_norm`` squared is the sum of squares), and the uint8 (0/1)
        ``[units]`` "active on some element" tensor when ``ever``.
    """
    x = out.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half-precision sums would round the element counts
    active = x > 0
    sums = [x.sum(), torch.linalg.vector_norm(x), active.sum()]
    if kind == "bounded" and bounds is not None:
        lo, hi = bounds
        margin = SATURATION_MARGIN * (hi - lo)
        sums.append(((x <= lo + margin) | (x >= hi - margin)).sum())
    if not ever:
        return sums, None
    # As uint8 0/1: a max over a dimension is several times faster than a bool any().
    units = active.view(torch.uint8)
    units = units.flatten(2).amax(dim=2) if x.ndim > 2 else units
    return sums, units.amax(dim=0) if x.ndim > 1 else units


def stats_from_sums(sums: np.ndarray, numel: np.ndarray) -> np.ndarray:
    """``[..., 4]`` sums (see :func:`batch_activation_sums`) and ``[...]`` element counts to
    ``[..., 4]`` ``mean, var, inactive_fraction, saturated_fraction`` (float64)."""
    n = np.maximum(numel, 1).astype(np.float64)
    mean = sums[..., 0] / n
    var = np.maximum(sums[..., 1] ** 2 / n - mean**2, 0.0)
    return np.stack([mean, var, 1.0 - sums[..., 2] / n, sums[..., 3] / n], axis=-1)


class ActivationMonitor(Monitor):
    """Forward hooks on the activation modules of a model (ReLU family, sigmoid, tanh, ...).

    Hooks exist only while armed (:meth:`arm` before a sampled forward pass,
    :meth:`disarm` after), so unsampled steps cost nothing. Per sampled batch it keeps
    mean, variance, inactive and saturated fractions; over an accumulation window it keeps,
    per unit, whether the unit was ever active. :meth:`compute_window` turns that into the
    fraction of units never active ("dead") once at least ``min_samples`` samples were seen.

    Args:
        model: the network to watch.
        min_samples: samples a dead-unit verdict needs; a unit active on a fraction p of the
            inputs goes unseen in n samples with probability (1 - p)^n, 0.6 % for p = 1 %,
            n = 512, so windows of fewer samples keep accumulating across epochs.
    """

    def __init__(self, model: nn.Module, *, min_samples: int = 512) -> None:
        self.modules: list[tuple[str, nn.Module, ActivationKind]] = []
        for name, module in model.named_modules():
            kind = activation_kind(module)
            if kind is not None:
                self.modules.append((name or "model", module, kind))
        self.names = [name for name, _, _ in self.modules]
        self.min_samples = min_samples
        self._handles: list[Any] = []
        self._step, self._epoch = 0, 0
        self._batch: dict[int, list[Tensor]] = {}
        self._numel: dict[int, int] = {}
        # Per sampled step: step, epoch, [layers, 4] sums on the device, elements per layer.
        self._rows: list[tuple[int, int, Tensor, list[int]]] = []
        self._ever_active: dict[int, Tensor] = {}
        self._seen = 0

    def arm(self, step: int, epoch: int) -> None:
        """Hook the next forward pass (one training batch)."""
        if self._handles:
            return
        self._step, self._epoch, self._batch, self._numel = step, epoch, {}, {}
        for i, (_, module, kind) in enumerate(self.modules):
            bounds = _BOUNDS.get(type(module))
            self._handles.append(module.register_forward_hook(self._hook(i, kind, bounds)))

    def _hook(self, i: int, kind: ActivationKind, bounds: tuple[float, float] | None) -> Any:
        rectifier = kind == "rectifier"  # only rectifiers get a dead-unit verdict

        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            if not isinstance(out, Tensor) or out.ndim == 0 or i in self._batch:
                return  # a module called twice in one forward is counted once
            sums, active = batch_activation_sums(out, kind, bounds, ever=rectifier)
            self._batch[i] = sums
            self._numel[i] = out.numel()
            if active is not None:
                previous = self._ever_active.get(i)
                if previous is None or previous.shape != active.shape:
                    self._ever_active[i] = active
                else:
                    self._ever_active[i] = previous.to(active.device) | active
            if i == 0:
                self._seen += int(out.shape[0])
        return hook

    def disarm(self) -> None:
        """Remove the hooks and keep what the armed forward pass saw (one stack for all layers)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._batch and len(self._batch) == len(self.modules):
            layers = [self._batch[i] for i in range(len(self.modules))]
            zero = layers[0][0].new_zeros(())
            flat = [t for sums in layers for t in (sums if len(sums) == 4 else [*sums, zero])]
            values = torch.stack(flat).reshape(len(layers), 4)
            self._rows.append((self._step, self._epoch, values, [self._numel[i] for i in range(len(layers))]))
        self._batch, self._numel = {}, {}

    def update(self, step: int, epoch: int) -> None:  # Monitor protocol: arming is the update
        self.arm(step, epoch)

    @property
    def pending(self) -> int:
        """Sampled steps held on the device since the last reset."""
        return len(self._rows)

    def compute(self) -> pd.DataFrame:
        """Per sampled step: ``act_mean``, ``act_var``, ``inactive_fraction``, ``saturation``."""
        if not self._rows or not self.modules:
            return empty_table()
        sums = torch.stack([r[2] for r in self._rows]).cpu().double().numpy()  # [steps, layers, 4]
        values = stats_from_sums(sums, np.array([r[3] for r in self._rows], dtype=np.float64))
        bounded = np.array([kind == "bounded" for _, _, kind in self.modules])
        saturation = np.where(bounded[None, :], values[:, :, 3], np.nan)
        stats = {"act_mean": values[:, :, 0], "act_var": values[:, :, 1], "inactive_fraction": values[:, :, 2],
                 "saturation": saturation}
        if not bounded.any():
            del stats["saturation"]
        return long_table([r[0] for r in self._rows], [r[1] for r in self._rows], self.names, stats)

    def compute_window(self, step: int, epoch: int, *, force: bool = False) -> pd.DataFrame:
        """Dead-unit fraction per rectifier layer over the window, once it has ``min_samples``
        samples (or ``force``); then the window restarts. Empty table while it is too short."""
        rect = [i for i, (_, _, kind) in enumerate(self.modules) if kind == "rectifier" and i in self._ever_active]
        if not rect or (self._seen < self.min_samples and not force):
            return empty_table()
        dead = torch.stack([1.0 - self._ever_active[i].float().mean() for i in rect]).cpu().double().numpy()
        units = np.array([self._ever_active[i].numel() for i in rect], dtype=float)
        seen = np.full(len(rect), float(self._seen))
        table = long_table([step], [epoch], [self.names[i] for i in rect],
                           {"dead_fraction": dead[None], "units": units[None], "samples_seen": seen[None]})
        self._ever_active, self._seen = {}, 0
        return table

    def reset(self) -> None:
        self._rows.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [(s, e, v.cpu(), n) for s, e, v, n in self._rows],
                "ever_active": {i: t.cpu().bool() for i, t in self._ever_active.items()}, "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rows = [_sums_row(row) for row in state.get("rows", [])]
        self._ever_active = {i: t.to(torch.uint8) for i, t in state.get("ever_active", {}).items()}
        self._seen = int(state.get("seen", 0))


def _sums_row(row: tuple[Any, ...]) -> tuple[int, int, Tensor, list[int]]:
    """A checkpointed row; rows of checkpoints written before the sums (``step, epoch,
    [layers, 4] statistics``) are turned into sums over one element, which give them back."""
    if len(row) == 4:
        return row[0], row[1], row[2], list(row[3])
    step, epoch, stats = row
    stats = stats.double()
    mean, var = stats[:, 0], stats[:, 1]
    sums = torch.stack([mean, (var + mean.square()).sqrt(), 1.0 - stats[:, 2], stats[:, 3]], dim=1)
    return step, epoch, sums, [1] * stats.shape[0]
