"""``DiagnosisCallback``: owns the monitors during ``fit``, writes ``layers.parquet`` and
``findings.json``, and runs the training checks every N steps and at the end."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import (
    Finding,
    sort_findings,
    write_findings,
)
from trainground.diagnosis.layers_file import (
    read_layers,
    truncate_layers,
    write_layers_part,
)
from trainground.diagnosis.registry import (
    CheckSpec,
    available_checks,
    get_check,
    run_check,
)
from trainground.diagnosis.task_findings import (
    EPOCH_CHECKS,
    epoch_tasks,
    per_task_epoch_findings,
)
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.monitors import (
    ActivationMonitor,
    GradientMonitor,
    LossHistory,
    PredictionMonitor,
    RepresentationMonitor,
    RoutingMonitor,
    empty_table,
    long_table,
)

# Checks about the data rather than the optimisation: their evidence does not change
# during training, so they run once at the first periodic check and once at the end.
DATA_CHECKS = ("distribution_shift",)
# Sampled steps kept on the device before one host copy turns them into rows (bounds the
# memory of a long run without checkpoints; each copy costs a few milliseconds).
_DRAIN_EVERY = 256


@dataclass
class DiagnosisConfig:
    """What the diagnosis watches and when it concludes."""

    # Registered check names to run; None = every training check plus distribution_shift
    # (which runs only when the callback was given the datasets it compares).
    checks: tuple[str, ...] | None = None
    # Run the checks every N optimizer steps as well as at the end (None = at the end only).
    # Each run costs one host sync of the monitors and the checks' pandas work.
    check_every: int | None = None
    # Gradient, activation, representation and prediction statistics are taken on one
    # step in N: the cost per step is divided by N, and trends over hundreds of steps
    # survive it. Losses are recorded on every step (spikes and NaN last one step).
    # 20 by default: what the sampled checks read are trends over windows of hundreds of
    # steps (an exploding/vanishing gradient norm, a dying layer, a collapsing rank), and
    # a sampled step costs about one training step of a small model, so 1 in 20 keeps the
    # monitors near 5 % of the step; the step-level events (spikes, NaN) do not depend on it.
    sample_every: int = 20
    # Samples a dead-unit verdict needs (see ActivationMonitor): windows shorter than this
    # keep accumulating across epochs.
    min_dead_samples: int = 512
    # Penultimate-feature rows kept per epoch for the effective rank (SVD cost ~ rows * width^2).
    representation_rows: int = 1024
    # Write findings.json in the run directory at the end of fit (when fit has one).
    write_findings: bool = True


class DiagnosisCallback(Callback):
    """Watches a run and concludes: ``fit(model, data, callbacks=[DiagnosisCallback()])``.

    After ``fit``, ``.findings`` holds the findings (most severe first), and, with a run
    directory, ``layers.parquet`` and ``findings.json`` are written there. A finding's
    ``step`` is the first step at which its evidence showed the problem.

    Args:
        config: what to check and how often.
        train_data, val_data, test_data: datasets for the checks that compare splits
            (distribution shift); optional.
    """

    def __init__(
        self, config: DiagnosisConfig | None = None, *, train_data: Any = None, val_data: Any = None,
        test_data: Any = None,
    ) -> None:
        self.config = config or DiagnosisConfig()
        if self.config.sample_every < 1:
            from trainground.errors import ConfigError

            raise ConfigError(f"sample_every must be >= 1, got {self.config.sample_every}")
        self.train_data, self.val_data, self.test_data = train_data, val_data, test_data
        self.findings: list[Finding] = []
        self.skipped: list[str] = []
        # (check, subject) -> step of the check run that first reported it (live detection latency).
        self.reported_at: dict[tuple[str, str], int] = {}
        self._specs = self._resolve_checks()
        self._tables: list[pd.DataFrame] = []
        self._unwritten: list[pd.DataFrame] = []
        self._parts = 0
        self._first_seen: dict[tuple[str, str], int] = {}
        self._data_findings: list[Finding] | None = None
        self._pending_state: dict[str, Any] | None = None
        self._sampled = False
        self._model: Any = None
        self._state: TrainState | None = None

    @property
    def check_names(self) -> list[str]:
        """Names of the checks this callback runs."""
        return [s.name for s in self._specs]

    def _resolve_checks(self) -> list[CheckSpec]:
        if self.config.checks is not None:
            return [get_check(n) for n in self.config.checks]
        return available_checks("training") + [get_check(n) for n in DATA_CHECKS]

    # ---- events -----------------------------------------------------------------------
    def on_fit_start(self, state: TrainState) -> None:
        self._model = state.model
        self.gradients = GradientMonitor(state.model)
        self.activations = ActivationMonitor(state.model, min_samples=self.config.min_dead_samples)
        self.representation = RepresentationMonitor(state.model, max_rows=self.config.representation_rows)
        self.predictions = PredictionMonitor(max(self.representation.num_classes, 1))
        self.history = LossHistory()
        self.routing = RoutingMonitor(state.model)  # MoE layers' routing, every training forward (cheap)
        if self._pending_state is not None:
            self._restore(self._pending_state, state)
            self._pending_state = None

    def on_batch_start(self, state: TrainState) -> None:
        self._sampled = state.step % self.config.sample_every == 0
        if self._sampled:
            self.activations.arm(state.step + 1, state.epoch)
            self.representation.arm()

    def on_after_forward(self, state: TrainState) -> None:
        if self._sampled:
            self.activations.disarm()
            self.representation.disarm()
            if isinstance(state.logits, torch.Tensor) and state.logits.ndim == 2:  # not a multi-task dict
                self.predictions.update(state.logits, "train")

    def on_after_backward(self, state: TrainState) -> None:
        if self._sampled:
            # Under the Guard, param.grad holds the window's sample-weighted sum (times the AMP
            # scale) until the Guard steps: read it at the scale of a mean gradient.
            scale = state.guard.grad_scale if state.guard is not None else 1.0
            self.gradients.update(state.step + 1, state.epoch, grad_scale=scale)

    def on_batch_end(self, state: TrainState) -> None:
        if self._sampled:
            if state.guard is None or state.window_closed:
                self.gradients.update_after_step()
            else:
                self.gradients.discard()  # a micro-batch of an open window: no update to measure
        if state.loss is not None:
            self.history.update(state.step, state.epoch, state.loss, state.lr,
                                guard=None if state.guard is None else state.guard.last_stats)
        every = self.config.check_every
        if every and state.step % every == 0:
            self._run_checks(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self.history.update_epoch(state.step, state.epoch, state.epoch_metrics)
        # Windows close at epoch ends once they hold enough evidence, not at every epoch:
        # with short epochs a per-epoch SVD and host copy would cost more than the steps.
        self._add(self.activations.compute_window(state.step, state.epoch))
        self._add(self.routing.compute_window(state.step, state.epoch))
        self.routing.reset()
        if max(self.gradients.pending, self.activations.pending) >= _DRAIN_EVERY:
            self._drain()
        if self.representation.full:
            self._close_representation_window(state)

    def _close_representation_window(self, state: TrainState) -> None:
        self._add(self.representation.compute_window(state.step, state.epoch))
        self.representation.reset()
        self._add(self._prediction_rows(state.step, state.epoch))
        self.predictions.reset()

    def on_checkpoint(self, state: TrainState) -> None:
        self._drain()
        self._flush(state)

    def on_fit_end(self, state: TrainState) -> None:
        self.routing.remove()
        self._drain()
        if not any((t["stat"] == "dead_fraction").any() for t in self._tables if not t.empty):
            # A run shorter than one dead-unit window still gets a (labelled) verdict.
            self._add(self.activations.compute_window(state.step, state.epoch, force=True))
        if self.representation.rows:
            self._close_representation_window(state)
        self._flush(state)
        if self._specs:  # building the evidence costs a few pandas concatenations; skip it for none
            self._run_checks(state, final=True)
        if self.config.write_findings and state.run_dir is not None:
            write_findings(state.run_dir.findings, self.findings)

    # ---- evidence and checks ------------------------------------------------------------
    def evidence(self) -> Evidence:
        """What the checks read now: per-step losses, per-epoch metrics, the layers table."""
        self._drain()
        tables = [t for t in self._tables if not t.empty]
        epochs = self.history.compute_epochs()
        return Evidence(
            steps=self.history.compute().copy(), epochs=epochs if not epochs.empty else None,
            layers=pd.concat(tables, ignore_index=True) if tables else empty_table(),
            model=self._model, train=self.train_data, val=self.val_data, test=self.test_data,
        )

    def _run_checks(self, state: TrainState, *, final: bool = False) -> None:
        evidence = self.evidence()
        found: list[Finding] = []
        self.skipped = []
        for spec in self._specs:
            if spec.name in DATA_CHECKS and self._data_findings is not None and not final:
                found += self._data_findings
                continue
            if not spec.runnable(evidence):
                self.skipped.append(spec.name)
                continue
            result = run_check(spec, evidence, step=state.step)  # a failing check becomes a finding
            found += result.findings
            if spec.name in DATA_CHECKS:
                self._data_findings = list(result.findings)
        tasks = epoch_tasks(evidence.epochs)
        if tasks and any(spec.name in EPOCH_CHECKS for spec in self._specs):
            found += per_task_epoch_findings(evidence.epochs, tasks)  # a multi-target run: each task's curves
        self.findings = self._merge(found, state.step)

    def _merge(self, found: list[Finding], step: int) -> list[Finding]:
        # A finding keeps the first step of its uninterrupted run of sightings; one that
        # stopped showing (a transient early alarm the full evidence no longer supports)
        # is dropped, and its clock restarts if it comes back.
        seen, reported = {}, {}
        merged = []
        for f in found:
            key = (f.check, f.subject)
            first = min(s for s in (self._first_seen.get(key), f.step, step) if s is not None)
            seen[key] = first
            reported[key] = self.reported_at.get(key, step)
            merged.append(dataclasses.replace(f, step=first))
        self._first_seen, self.reported_at = seen, reported
        return sort_findings(merged)

    # ---- tables -----------------------------------------------------------------------
    def _add(self, table: pd.DataFrame) -> None:
        if not table.empty:
            self._tables.append(table)
            self._unwritten.append(table)

    def _drain(self) -> None:
        for monitor in (self.gradients, self.activations):
            self._add(monitor.compute())
            monitor.reset()

    def _prediction_rows(self, step: int, epoch: int) -> pd.DataFrame:
        split = self.predictions.compute().get("train")
        if split is None:
            return empty_table()
        return long_table([step], [epoch], ["predictions:train"], {
            "pred_max_fraction": np.array([[split["max_fraction"]]]),
            "pred_entropy_ratio": np.array([[split["entropy_ratio"]]]),
        })

    def _flush(self, state: TrainState) -> None:
        if state.run_dir is None or not self._unwritten:
            self._unwritten = []
            return
        write_layers_part(state.run_dir.layers, pd.concat(self._unwritten, ignore_index=True), self._parts)
        self._parts += 1
        self._unwritten = []

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self._model is None:
            return {}
        return {
            "parts": self._parts, "first_seen": [[c, s, n] for (c, s), n in self._first_seen.items()],
            "reported_at": [[c, s, n] for (c, s), n in self.reported_at.items()],
            "activations": self.activations.state_dict(), "representation": self.representation.state_dict(),
            "predictions": self.predictions.state_dict(), "history": self.history.state_dict(),
            "gradients": self.gradients.state_dict(), "routing": self.routing.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # fit restores callbacks before FIT_START, when the monitors do not exist yet.
        self._pending_state = state or None

    def _restore(self, saved: dict[str, Any], state: TrainState) -> None:
        self._parts = int(saved.get("parts", 0))
        self._first_seen = {(c, s): int(n) for c, s, n in saved.get("first_seen", [])}
        self.reported_at = {(c, s): int(n) for c, s, n in saved.get("reported_at", [])}
        for name in ("activations", "representation", "predictions", "history", "gradients", "routing"):
            if name in saved:
                getattr(self, name).load_state_dict(saved[name])
        self._tables, self._unwritten = [], []
        if state.run_dir is not None:
            truncate_layers(state.run_dir.layers, self._parts)
            table = read_layers(state.run_dir.layers)
            if not table.empty:
                self._tables.append(table)
