"""Loss per step and loss/accuracy per epoch and split, with no host sync per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from trainground.monitors.base import Monitor

# Device scalars are stacked into one tensor every so often, so the pending list stays short.
_CHUNK = 256
# The Guard's per-step scalars kept next to the loss (the guard_stall check reads them),
# named as in metrics.jsonl.
GUARD_COLUMNS = ("grad_norm", "clip_threshold", "update_scale")
# One step's Guard columns: none, host floats (the CPU Guard's ``FloatStats``) or a device row.
GuardRow = tuple[float, ...] | Tensor | None


class LossHistory(Monitor):
    """Every step's training loss (kept on the device until :meth:`compute`), and the
    per-epoch metrics of every split (``train_loss``, ``val_accuracy``, ...)."""

    def __init__(self) -> None:
        # Per step: the detached loss, the Guard's columns (None, floats, or a device row) and
        # (step, epoch, lr). Nothing is converted per step: one stack per chunk does it.
        self._pending: list[tuple[Tensor, GuardRow]] = []
        self._pending_meta: list[tuple[int, int, float]] = []
        self._steps = pd.DataFrame({"step": pd.Series(dtype="int64"), "epoch": pd.Series(dtype="int64"),
                                    "loss": pd.Series(dtype="float64"), "lr": pd.Series(dtype="float64")})
        self._chunks: list[tuple[Tensor, list[tuple[int, int, float]]]] = []
        self.epochs: list[dict[str, float]] = []

    def update(self, step: int, epoch: int, loss: Tensor, lr: float = float("nan"),
               guard: Mapping[str, Tensor] | None = None) -> None:
        """Record one step's (batch-mean) loss; ``step`` counts optimizer steps taken before it.
        ``guard``: the Guard's ``last_stats`` (its ``GUARD_COLUMNS`` are kept too)."""
        row: GuardRow = None  # the Guard's columns are NaN for a step without one
        if guard is not None:
            floats = getattr(guard, "floats", None)  # the CPU Guard keeps them as floats: no tensor per step
            if floats is not None:
                values = floats()
                row = tuple(float(values[k]) for k in GUARD_COLUMNS)
            else:
                row = torch.stack([guard[k].detach().float().reshape(()).to(loss.device) for k in GUARD_COLUMNS])
        self._pending.append((loss.detach(), row))
        self._pending_meta.append((step, epoch, lr))
        if len(self._pending) >= _CHUNK:
            self._chunks.append((_stack_rows(self._pending), self._pending_meta))
            self._pending, self._pending_meta = [], []

    def update_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """Record one epoch's metrics (train and validation loss/accuracy)."""
        self.epochs.append({"step": step, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}})

    def compute(self) -> pd.DataFrame:
        """Per-step table ``step, epoch, loss, lr`` and the Guard's columns when it logged any
        (the same columns as ``metrics.jsonl``)."""
        if self._pending:
            self._chunks.append((_stack_rows(self._pending), self._pending_meta))
            self._pending, self._pending_meta = [], []
        if self._chunks:
            rows = torch.cat([c for c, _ in self._chunks]).double().cpu().numpy()
            meta = np.array([m for _, ms in self._chunks for m in ms], dtype=float).reshape(-1, 3)
            new = pd.DataFrame({"step": meta[:, 0].astype(np.int64), "epoch": meta[:, 1].astype(np.int64),
                                "loss": rows[:, 0], "lr": meta[:, 2]})
            for i, name in enumerate(GUARD_COLUMNS, start=1):
                if np.isfinite(rows[:, i]).any() or name in self._steps:
                    new[name] = rows[:, i]
            self._steps = new if self._steps.empty else pd.concat([self._steps, new], ignore_index=True)
            self._chunks = []
        return self._steps

    def compute_epochs(self) -> pd.DataFrame:
        return pd.DataFrame(self.epochs)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def state_dict(self) -> dict[str, Any]:
        steps = self.compute()
        # Tensors, not numpy arrays: checkpoints are read back with torch.load(weights_only=True).
        return {"steps": {c: torch.from_numpy(steps[c].to_numpy().copy()) for c in steps.columns},
                "epochs": list(self.epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        self._steps = pd.DataFrame({c: v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                                    for c, v in state["steps"].items()})
        self.epochs = list(state.get("epochs", []))


def _stack_rows(rows: list[tuple[Tensor, GuardRow]]) -> Tensor:
    """``[n, 1 + len(GUARD_COLUMNS)]`` float32 of pending rows: the loss, then the Guard's
    columns (float32 as the Guard's tensors are; NaN for steps without a Guard)."""
    losses = [r[0] for r in rows]
    try:
        loss = torch.stack(losses).float().reshape(len(rows))
    except RuntimeError:  # losses of mixed shapes or devices
        loss = torch.stack([x.float().reshape(()).to(losses[0].device) for x in losses])
    on_host = [i for i, (_, g) in enumerate(rows) if isinstance(g, tuple)]
    if len(on_host) == len(rows):  # every step from the CPU Guard: one tensor of all its floats
        guard = torch.tensor([r[1] for r in rows], dtype=torch.float32).to(loss.device)
        return torch.cat([loss.reshape(-1, 1), guard], dim=1)
    guard = loss.new_full((len(rows), len(GUARD_COLUMNS)), float("nan"))
    if on_host:
        guard[on_host] = torch.tensor([rows[i][1] for i in on_host], dtype=torch.float32).to(loss.device)
    on_device = [i for i, (_, g) in enumerate(rows) if isinstance(g, Tensor)]
    if on_device:
        guard[on_device] = torch.stack([rows[i][1].to(loss.device) for i in on_device])  # type: ignore[union-attr]
    return torch.cat([loss.reshape(-1, 1), guard], dim=1)
