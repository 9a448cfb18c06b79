"""Per-player layer statistics of a two-player run: gradient and activation monitors -> ``layers-<name>.parquet``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from trainground.engine.atomic import atomic_write
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.monitors import ActivationMonitor, GradientMonitor


class PlayerLayerMonitor(Callback):
    """One player's training monitors (per-layer gradient norm, update ratio, activation statistics,
    dead units), sampled every ``sample_every`` micro-batches; the whole table is rewritten
    atomically to ``layers-<player>.parquet`` at each epoch end (two-player runs are small).

    A gradient sample is taken on the first micro-batch at or after each multiple of ``sample_every``
    whose window closes (so with accumulation K the norm is the window's, at true scale).

    Args:
        player: the player's name (keys its checkpoint state and its file).
        sample_every: micro-batches between samples.
        min_dead_samples: samples a dead-unit verdict needs (``ActivationMonitor``).
    """

    def __init__(self, player: str, *, sample_every: int = 10, min_dead_samples: int = 512) -> None:
        self.player, self.sample_every, self.min_dead_samples = player, max(1, sample_every), min_dead_samples
        self.state_key = f"PlayerLayerMonitor:{player}"
        self.gradients: GradientMonitor | None = None
        self.activations: ActivationMonitor | None = None
        self._armed = False
        self._tables: list[pd.DataFrame] = []
        self._saved: dict[str, Any] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.gradients = GradientMonitor(state.model)
        self.activations = ActivationMonitor(state.model, min_samples=self.min_dead_samples)
        if self._saved is not None:
            self.gradients.load_state_dict(self._saved["gradients"])
            self.activations.load_state_dict(self._saved["activations"])
            self._saved = None

    def on_batch_start(self, state: TrainState) -> None:
        assert self.activations is not None
        if state.step % self.sample_every == 0:
            self._armed = True
            self.activations.arm(state.step + 1, state.epoch)

    def on_after_forward(self, state: TrainState) -> None:
        assert self.activations is not None
        self.activations.disarm()  # only the player's own forward pass of this micro-batch

    def on_after_backward(self, state: TrainState) -> None:
        assert self.gradients is not None
        if self._armed and state.guard is not None and state.guard.window.micro >= state.guard.k:
            self.gradients.update(state.step + 1, state.epoch, grad_scale=state.guard.grad_scale)

    def on_batch_end(self, state: TrainState) -> None:
        assert self.gradients is not None
        if self.gradients._pending is not None:  # noqa: SLF001  (a sample is open)
            if state.window_closed:
                self.gradients.update_after_step()
                self._armed = False
            else:
                self.gradients.discard()

    def on_epoch_end(self, state: TrainState) -> None:
        self._collect(state, final=False)

    def on_fit_end(self, state: TrainState) -> None:
        self._collect(state, final=True)  # a dead-unit window shorter than min_dead_samples still counts

    def _collect(self, state: TrainState, *, final: bool) -> None:
        assert self.gradients is not None and self.activations is not None
        for table in (self.gradients.compute(), self.activations.compute(),
                      self.activations.compute_window(state.step, state.epoch, force=final)):
            if len(table):
                self._tables.append(table)
        self.gradients.reset()
        self.activations.reset()
        if state.run_dir is not None and self._tables:
            frame = self.table()
            atomic_write(state.run_dir.path / f"layers-{self.player}.parquet",
                         lambda fh: frame.to_parquet(fh, index=False))

    def table(self) -> pd.DataFrame:
        """Everything observed so far (long format: step, epoch, layer, stat, value)."""
        return pd.concat(self._tables, ignore_index=True) if self._tables else pd.DataFrame()

    def state_dict(self) -> dict[str, Any]:
        assert self.gradients is not None and self.activations is not None
        frame = self.table()
        return {"gradients": self.gradients.state_dict(), "activations": self.activations.state_dict(),
                "armed": self._armed, "table": {c: frame[c].tolist() for c in frame.columns}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved = state
        self._armed = bool(state["armed"])
        self._tables = [pd.DataFrame(state["table"])] if state["table"] else []
