"""TrialWatch on its own: what ends a trial, and why (with a stand-in for Optuna's trial)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna

from trainground.diagnosis import DiagnosisCallback, Finding, Severity
from trainground.tune.config import TuneConfig
from trainground.tune.pruning import TrialWatch
from trainground.tune.study import pruner_for


class FakeTrial:
    def __init__(self, prune_at: int | None = None) -> None:
        self.reported: list[tuple[float, int]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reported.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reported) >= self.prune_at


def _state(epoch_metrics: dict, history_len: int) -> SimpleNamespace:
    return SimpleNamespace(epoch_metrics=epoch_metrics, history=[{}] * history_len, stop_requested=False,
                           steps_per_epoch=10, step=10 * history_len)


def test_reports_each_epoch_and_stops_when_the_pruner_says_so():
    trial = FakeTrial(prune_at=2)
    watch = TrialWatch(trial, None, metric="val_accuracy")
    for epoch in (1, 2):
        state = _state({"val_accuracy": 0.5 + epoch / 10, "train_loss": 1.0, "val_loss": 1.0}, epoch)
        watch.on_epoch_end(state)
    assert trial.reported == [(0.6, 1), (0.7, 2)]
    assert state.stop_requested and watch.pruned_reason == "pruner" and watch.pruned_epoch == 2


def test_an_error_pathology_prunes_at_once_and_a_warning_does_not(monkeypatch):
    from trainground.tune import pruning

    warn = Finding("lr_too_high", Severity.WARNING, "run", "learning rate too high")
    error = Finding("dead_units", Severity.ERROR, "layer:body.0", "92 % of units never fire")
    found = {"lr_too_high": [warn]}
    monkeypatch.setattr(pruning, "run_check",
                        lambda spec, evidence, step: SimpleNamespace(findings=found.get(spec.name, [])))
    monkeypatch.setattr(DiagnosisCallback, "evidence", lambda self: SimpleNamespace(available=lambda: set()))
    monkeypatch.setattr(pruning, "get_check", lambda name: SimpleNamespace(name=name, runnable=lambda e: True))
    watch = TrialWatch(FakeTrial(), DiagnosisCallback(), metric="val_accuracy")
    state = _state({"val_accuracy": 0.3, "train_loss": 2.0}, 1)
    watch.on_epoch_end(state)
    assert not state.stop_requested
    found["dead_units"] = [error]
    watch.on_epoch_end(state)
    assert state.stop_requested and watch.pruned_reason == "dead network"
    assert watch.pruned_by.startswith("dead_units:")


def test_without_diagnosis_pruning_the_epoch_is_left_to_the_pruner():
    trial = FakeTrial()
    watch = TrialWatch(trial, None, metric="val_accuracy")
    state = _state({"val_accuracy": 0.1, "train_loss": 5.0}, 1)
    watch.on_epoch_end(state)
    assert not state.stop_requested and trial.reported == [(0.1, 1)]


def test_a_non_finite_loss_prunes_as_nan_even_without_the_checks():
    watch = TrialWatch(FakeTrial(), None, metric="val_accuracy")
    state = _state({"val_accuracy": 0.1, "train_loss": math.nan}, 1)
    watch.on_epoch_end(state)
    assert state.stop_requested and watch.pruned_reason == "nan"


def test_pruners():
    assert isinstance(pruner_for(TuneConfig(pruner="hyperband"), 8), optuna.pruners.HyperbandPruner)
    assert isinstance(pruner_for(TuneConfig(), 8), optuna.pruners.MedianPruner)
    assert isinstance(pruner_for(TuneConfig(pruner="none"), 8), optuna.pruners.NopPruner)
