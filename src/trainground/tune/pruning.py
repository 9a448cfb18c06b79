"""The trial's watcher: reports each epoch's validation metric to Optuna and ends a trial
that its pruner, or its own training diagnosis, gives up on.

Diagnosis-aware pruning: the pathology checks run at each epoch end on the evidence of the
run's ``DiagnosisCallback``; an error-severity finding of one of them (divergence, dead
network, collapse; ``TuneConfig.prune_checks``) or a non-finite loss ends the trial after
that epoch, whatever its validation metric says. A median pruner only compares a trial
with the others at the same epoch, so a diverged run of a good configuration family can
survive several epochs; and before ``startup_trials`` have finished it prunes nothing.
The trial still ends as a normal, complete run directory (its model, metrics, findings).
"""

from __future__ import annotations

import math
from typing import Any

from trainground.diagnosis import DiagnosisCallback, Finding, Severity
from trainground.diagnosis.registry import get_check, run_check
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.tune.config import PATHOLOGIES


class TrialWatch(Callback):
    """Reports ``metric`` per epoch to ``trial``; asks the loop to stop when the trial is pruned.

    After ``fit``, ``pruned_reason`` is None (the trial ran to the end), ``"pruner"``
    (Optuna's pruner), ``"nan"`` or the name of a pathology (``"divergence"``, ...), and
    ``pruned_by`` the finding (check and message) or pruner that ended it.
    """

    def __init__(self, trial: Any, diagnosis: DiagnosisCallback | None, *, metric: str,
                 prune_checks: tuple[str, ...] = tuple(PATHOLOGIES), use_pruner: bool = True) -> None:
        self.trial, self.diagnosis, self.metric = trial, diagnosis, metric
        self.prune_checks, self.use_pruner = prune_checks, use_pruner
        self.pruned_reason: str | None = None
        self.pruned_by: str = ""
        self.pruned_epoch: int | None = None
        self.values: list[float] = []

    def on_epoch_end(self, state: TrainState) -> None:
        metrics = state.epoch_metrics
        value = float(metrics.get(self.metric, math.nan))
        self.values.append(value)
        epoch = len(state.history)  # epochs finished, 1-based
        losses = [metrics.get(k) for k in ("train_loss", "val_loss") if metrics.get(k) is not None]
        if any(not math.isfinite(float(v)) for v in losses):
            self._stop(state, "nan", "non-finite training or validation loss", epoch)
            return
        if self.diagnosis is not None:
            finding = self._pathology(state)
            if finding is not None:
                self._stop(state, PATHOLOGIES.get(finding.check, finding.check),
                           f"{finding.check}: {finding.message}", epoch)
                return
        if math.isfinite(value):
            self.trial.report(value, epoch)
            if self.use_pruner and self.trial.should_prune():
                self._stop(state, "pruner", f"{self.metric} {value:.4g} at epoch {epoch}", epoch)

    def _pathology(self, state: TrainState) -> Finding | None:
        """The first error-severity finding of the pathology checks on the evidence so far.

        Only ``prune_checks`` run here, not the callback's whole list: running every training
        check at every epoch end cost 2-4x the training time of a small trial (benchmarks/tune.py).
        """
        evidence = self.diagnosis.evidence()
        for name in self.prune_checks:
            spec = get_check(name)
            if not spec.runnable(evidence):
                continue
            for finding in run_check(spec, evidence, step=state.step).findings:
                if finding.severity == Severity.ERROR:
                    return finding
        return None

    def _stop(self, state: TrainState, reason: str, why: str, epoch: int) -> None:
        self.pruned_reason, self.pruned_by, self.pruned_epoch = reason, why, epoch
        state.stop_requested = True
