"""Per-step and per-epoch scalars to ``metrics.jsonl``, with one host sync per flush."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.errors import RunDirError
from trainground.jsonsafe import finite_or_none

# Per-step Guard scalars written next to the loss (keys of ``Guard.last_stats``).
_GUARD_KEYS = ("grad_norm", "clip_threshold", "accum_k", "skipped", "update_scale")


class ScalarSink(Callback):
    """A callback fed with ``metrics.jsonl``'s records as they are written (TensorBoard, MLflow...).

    ``fit`` hands every ``ScalarSink`` among its callbacks to its :class:`MetricsWriter`, so
    the sinks share the writer's device buffer and its one host sync per flush, and see
    exactly the values (and steps) the file holds; non-finite values arrive as ``None``.
    Records reach a sink before the sink's own ``on_epoch_end``/``on_checkpoint`` hook of the
    same event, so at ``on_checkpoint`` it holds every record up to ``state.step``.
    """

    def write_records(self, records: list[dict[str, Any]]) -> None:
        """Step and epoch records, in order (shared with other sinks: read, don't mutate)."""


class MetricsWriter(Callback):
    """Appends one JSON object per line: ``{"kind": "step", "step", "epoch", "loss", "lr", "grad_norm",
    "clip_threshold", "accum_k", "skipped", "update_scale"}`` per batch (the last five from the Guard's last step)
    and ``{"kind": "epoch", "step", "epoch", <epoch_metrics>}`` per epoch.

    Losses are kept on the device and copied to the host in one ``torch.stack(...).tolist()``
    every ``flush_every`` steps, so logging costs one sync per flush, not one per step.
    On resume the file is cut back to what the checkpoint had seen, so no line is duplicated.
    ``sinks`` receive every record too; with ``path=None`` only they do (a run without a directory).
    """

    def __init__(self, path: str | Path | None, *, flush_every: int = 50, sinks: Sequence[ScalarSink] = ()) -> None:
        self.path = None if path is None else Path(path)
        self.sinks = list(sinks)
        self.flush_every = max(1, flush_every)
        # loss + Guard scalars (+ the state's step_extras), stacked; the extras' names
        self._pending: list[tuple[int, int, float, torch.Tensor, tuple[str, ...]]] = []
        self._bytes_at_checkpoint = 0

    def on_batch_end(self, state: TrainState) -> None:
        assert state.loss is not None
        values = state.loss.detach().float().reshape(1)
        if state.guard is not None:
            stats = state.guard.last_stats
            values = torch.cat([values, torch.stack([stats[k].detach().float().reshape(()).to(values.device)
                                                     for k in _GUARD_KEYS])])
        names: tuple[str, ...] = ()
        if state.step_extras:  # multi-target runs: per-task losses and gradient figures
            names = tuple(state.step_extras)
            values = torch.cat([values, torch.stack([v.detach().float().reshape(()).to(values.device)
                                                     for v in state.step_extras.values()])])
        self._pending.append((state.step, state.epoch, state.lr, values, names))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def on_epoch_end(self, state: TrainState) -> None:
        self.flush()
        record = {"kind": "epoch", "step": state.step, "epoch": state.epoch}
        record.update({k: finite_or_none(float(v)) for k, v in state.epoch_metrics.items()})
        self._append([record])

    def on_checkpoint(self, state: TrainState) -> None:
        # Durability matters only here: the checkpoint records how many bytes it has seen,
        # so those bytes must survive a power cut. Appends in between are not fsynced.
        self.flush()
        if self.path is None:
            return
        if self.path.exists():
            with open(self.path, "rb") as fh:
                os.fsync(fh.fileno())
        self._bytes_at_checkpoint = self.path.stat().st_size if self.path.exists() else 0

    def on_fit_end(self, state: TrainState) -> None:
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows = torch.nn.utils.rnn.pad_sequence([p[3] for p in self._pending], batch_first=True,
                                               padding_value=float("nan")).cpu().tolist()
        records = []
        for (step, epoch, lr, values, names), row in zip(self._pending, rows, strict=True):
            record = {"kind": "step", "step": step, "epoch": epoch, "loss": finite_or_none(row[0]), "lr": lr}
            guard_values = len(values) - 1 - len(names)
            if guard_values:
                record.update({k: finite_or_none(v) for k, v in zip(_GUARD_KEYS, row[1 : 1 + len(_GUARD_KEYS)],
                                                                     strict=True)})
                record["accum_k"] = int(row[3]) if math.isfinite(row[3]) else None
            if names:
                start = 1 + guard_values
                record.update({k: finite_or_none(v) for k, v in zip(names, row[start : start + len(names)],
                                                                     strict=True)})
            records.append(record)
        self._pending.clear()
        self._append(records)

    def _append(self, records: list[dict[str, Any]]) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in records))
        for sink in self.sinks:
            sink.write_records(records)

    def state_dict(self) -> dict[str, Any]:
        return {"bytes": self._bytes_at_checkpoint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Lines written after the checkpoint describe steps the resumed run will redo.
        self._bytes_at_checkpoint = int(state["bytes"])
        if self.path is not None and self.path.exists() and self.path.stat().st_size > self._bytes_at_checkpoint:
            with open(self.path, "r+b") as fh:
                fh.truncate(self._bytes_at_checkpoint)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise RunDirError(f"{path}: damaged ({type(err).__name__}); it cannot be read") from None
