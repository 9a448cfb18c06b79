"""The guard_stall check fires on a run the Guard holds back on a flat loss, and on nothing else."""

from __future__ import annotations

import pandas as pd
import torch

from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, Evidence, Severity
from trainground.diagnosis.checks.guard_stall import guard_stall
from trainground.engine import FitConfig, fit
from trainground.gradients import GuardConfig
from trainground.models import MLP


def _findings(data, guard: GuardConfig | None, *, lr: float, optimizer: str = "sgd") -> list:
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(64, 64)).fit_input_stats(data.features)
    callback = DiagnosisCallback(DiagnosisConfig(sample_every=2, min_dead_samples=256))
    config = FitConfig(epochs=6, batch_size=64, device="cpu", val_fraction=0.2, optimizer=optimizer, lr=lr)
    fit(model, data, config=config, callbacks=[callback], guard=guard)
    return [f for f in callback.findings if f.severity >= Severity.WARNING]


def test_fires_on_an_over_tight_clip(digits):
    small = digits.subset(torch.arange(800).numpy())
    found = [f for f in _findings(small, GuardConfig(max_norm=1e-4), lr=0.05) if f.check == "guard_stall"]
    assert len(found) == 1
    assert found[0].evidence["held_by"] == "clip"
    assert found[0].evidence["median_step_share"] < 0.1


def test_silent_when_the_guard_holds_the_step_but_the_loss_falls():
    n = 300
    steps = pd.DataFrame({"step": range(n), "loss": [2.0 * 0.99 ** t for t in range(n)],
                          "grad_norm": 1.0, "clip_threshold": 0.01, "update_scale": 0.05})
    assert guard_stall(Evidence(steps=steps)).findings == []
    flat = steps.assign(loss=2.0)
    found = guard_stall(Evidence(steps=flat)).findings
    assert len(found) == 1 and found[0].evidence["held_by"] == "clip"
    assert guard_stall(Evidence(steps=flat.assign(clip_threshold=float("nan"), update_scale=1.0))).findings == []
    trust = guard_stall(Evidence(steps=flat.assign(clip_threshold=2.0, update_scale=0.01))).findings
    assert trust[0].evidence["held_by"] == "trust_region"


def test_silent_without_guard_statistics():
    steps = pd.DataFrame({"step": range(300), "loss": 2.0})
    assert guard_stall(Evidence(steps=steps)).findings == []


def test_silent_on_a_healthy_run_with_the_default_guard(digits):
    # The other half of the check's promise: the Guard's defaults on a run that learns (as the
    # diagnosis suite's healthy runs, benchmarks/diagnosis_suite.py) raise no guard_stall.
    small = digits.subset(torch.arange(800).numpy())
    for optimizer, lr in (("adam", 1e-3), ("sgd", 0.05)):
        found = [f.check for f in _findings(small, GuardConfig(), lr=lr, optimizer=optimizer)]
        assert "guard_stall" not in found, (optimizer, found)
