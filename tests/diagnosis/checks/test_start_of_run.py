"""Where a run started: the loss of the initial weights, not of a model that already learnt
(issue 14: small tables at lr 1e-2 fit within the first ten steps)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis import Evidence, get_check
from trainground.diagnosis.checks._common import initial_loss


def _steps(loss: np.ndarray, per_epoch: int) -> pd.DataFrame:
    n = len(loss)
    return pd.DataFrame({"step": np.arange(1, n + 1), "epoch": np.arange(n) // per_epoch, "loss": loss, "lr": 1e-2})


def _layers(steps: np.ndarray, ratio: float, first: float | None = None) -> pd.DataFrame:
    rows = []
    for step in steps[::10]:
        for layer in ("body.0", "head"):
            value = first if first is not None and step <= 20 else ratio
            rows += [{"step": step, "layer": layer, "stat": "ndim", "value": 2.0},
                     {"step": step, "layer": layer, "stat": "trainable", "value": 1.0},
                     {"step": step, "layer": layer, "stat": "update_ratio", "value": value}]
    return pd.DataFrame(rows)


def _small_table_loss(n: int = 1000, seed: int = 0, hard: float = 0.3) -> np.ndarray:
    """A 160-row table at batch 16 (10 steps an epoch): 1.08 at the first step, fitted within the
    first epoch, then per-batch losses of a near-perfect model: mostly ~0, and a batch holding one
    of the hard rows (a share ``hard`` of the batches) at ~0.5: a flat mean of ``hard / 2``."""
    rng = np.random.default_rng(seed)
    loss = np.where(rng.random(n) < hard, rng.gamma(2.0, 0.25, n), rng.gamma(1.0, 1e-3, n))
    loss[:10] = [1.08, 0.39, 0.19, 0.22, 0.14, 0.60, 0.03, 0.02, 0.11, 0.57]
    return loss


def test_the_start_is_the_loss_of_the_initial_weights():
    loss = _small_table_loss()
    assert initial_loss(_steps(loss, per_epoch=10)) == 1.08
    assert initial_loss(pd.DataFrame({"step": [1, 2, 3], "loss": [np.nan, 3.0, 1.0]})) == 3.0  # first finite step


def test_a_fitted_small_table_is_neither_slow_nor_stuck():
    # Settled at ~0.15 (weight decay, a few hard rows) with tiny steps: read against the median of
    # the first 10 steps (0.2, already after one epoch) that was "above half the start".
    steps = _steps(_small_table_loss(hard=0.3), per_epoch=10)
    evidence = Evidence(steps=steps, layers=_layers(steps["step"].to_numpy(), 1e-6))
    for name in ("lr_too_low", "plateau"):
        assert not get_check(name).fn(evidence).findings, name


def test_a_fitted_small_table_did_not_diverge():
    # Settled at a mean of ~0.34 (a few confidently wrong rows), big steps only at the start:
    # above the median of the first 10 steps (0.2), far below the initial weights' 1.08.
    steps = _steps(_small_table_loss(hard=0.7), per_epoch=10)
    evidence = Evidence(steps=steps, layers=_layers(steps["step"].to_numpy(), 1e-8, first=0.25))
    assert not get_check("lr_too_high").fn(evidence).findings


def test_a_run_thrown_back_to_its_start_diverged():
    # Fitted to ~0.1, then an lr jump at step 600 throws it back to chance level (its start).
    rng = np.random.default_rng(1)
    loss = np.r_[2.3 * np.exp(-np.arange(600) / 60) + 0.1, 2.4 + 0.05 * rng.standard_normal(400)]
    steps = _steps(loss, per_epoch=20)
    found = get_check("lr_too_high").fn(Evidence(steps=steps, layers=_layers(steps["step"].to_numpy(), 0.05))).findings
    assert found and found[0].evidence["loss_diverged"] and 600 <= found[0].step <= 700


def test_a_clip_that_follows_a_fitted_model_down_is_not_a_stall():
    # Most batches of a fitted small table have next to no gradient; the percentile clip follows
    # them (threshold 1e-9) and the rare hard batch is cut: a fitted model, not a held step.
    steps = _steps(_small_table_loss(hard=0.3), per_epoch=10)
    steps = steps.assign(grad_norm=np.where(steps["loss"] > 0.05, 1.0, 1e-6), clip_threshold=1e-9, update_scale=1.0)
    assert not get_check("guard_stall").fn(Evidence(steps=steps)).findings
    # The same clip on a run still at its starting loss holds it back.
    stuck = steps.assign(loss=2.3 + 0.01 * np.sin(np.arange(len(steps))), grad_norm=1.0)
    assert get_check("guard_stall").fn(Evidence(steps=stuck)).findings
