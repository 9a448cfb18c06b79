"""Checks that read the loss history, on synthetic histories with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import Evidence, Severity, get_check


def _steps(loss: np.ndarray) -> pd.DataFrame:
    n = len(loss)
    return pd.DataFrame({"step": np.arange(1, n + 1), "epoch": np.arange(n) // 25, "loss": loss, "lr": 1e-3})


def _healthy_loss(n: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2.3 * np.exp(-np.arange(n) / 60) + 0.02 + rng.gamma(2.0, 0.02, n)


def _run(name: str, evidence: Evidence):
    return get_check(name).fn(evidence).findings


def test_healthy_history_is_silent_for_every_loss_check():
    for seed in range(3):
        ev = Evidence(steps=_steps(_healthy_loss(seed=seed)))
        for name in ("loss_spikes", "oscillating_loss", "plateau"):
            assert not [f for f in _run(name, ev) if f.severity >= Severity.WARNING], (name, seed)


def test_nonfinite_loss_is_an_error_at_its_step():
    loss = _healthy_loss()
    loss[321:] = np.nan
    (finding,) = _run("loss_spikes", Evidence(steps=_steps(loss)))
    assert finding.severity is Severity.ERROR and finding.step == 322


def test_unrecovered_spike_is_a_warning_dated_at_the_spike():
    loss = _healthy_loss()
    loss[300:] += 3.0  # a jump the run never recovers from
    (finding,) = _run("loss_spikes", Evidence(steps=_steps(loss)))
    assert finding.severity is Severity.WARNING and finding.step == 301


def test_isolated_recovered_spike_is_info_only():
    loss = _healthy_loss()
    loss[300] = 3.0
    (finding,) = _run("loss_spikes", Evidence(steps=_steps(loss)))
    assert finding.severity is Severity.INFO


def test_oscillating_loss_fires_on_a_zigzag():
    n = 800
    blocks = np.repeat(np.tile([0.8, 1.8], 20), n // 40)  # block means alternate, no trend
    loss = blocks + np.random.default_rng(0).normal(0, 0.05, n)
    loss[:10] = 2.3
    findings = _run("oscillating_loss", Evidence(steps=_steps(loss)))
    assert findings and findings[0].severity is Severity.WARNING


def test_plateau_fires_on_a_flat_high_loss():
    loss = 2.3 - 0.3 * (1 - np.exp(-np.arange(600) / 20)) + np.random.default_rng(0).normal(0, 0.01, 600)
    (finding,) = _run("plateau", Evidence(steps=_steps(loss)))
    assert finding.severity is Severity.WARNING and finding.step < 300


def test_overfitting_fires_when_val_loss_doubles_with_growing_gap():
    val = [1.0, 0.6, 0.5, 0.6, 0.8, 1.1, 1.4]
    train = [1.0, 0.5, 0.3, 0.15, 0.08, 0.04, 0.02]
    epochs = pd.DataFrame({"step": np.arange(1, 8) * 10, "epoch": range(7), "train_loss": train, "val_loss": val})
    (finding,) = _run("overfitting", Evidence(epochs=epochs))
    assert finding.severity is Severity.WARNING and finding.evidence["best_epoch"] == 2
    assert finding.step == 60  # the first epoch at >= 2x the best validation loss
    healthy = epochs.assign(val_loss=[1.0, 0.6, 0.5, 0.45, 0.44, 0.45, 0.46])
    assert not _run("overfitting", Evidence(epochs=healthy))


# ---- noise floors: what a small batch or a small validation split gives by chance is not a finding


def _small_batch_near_perfect_loss(n: int = 600, batch: int = 16, seed: int = 0) -> np.ndarray:
    """Batch means over ``batch`` samples of a near-perfect model with a few hard samples: most
    samples' loss is ~0.005, 3 % of them have a loss of about 9 (confidently wrong)."""
    rng = np.random.default_rng(seed)
    per_sample = np.where(rng.random((n, batch)) < 0.03, rng.gamma(9.0, 1.0, (n, batch)), rng.gamma(2.0, 0.0025, (n, batch)))
    loss = per_sample.mean(axis=1)
    loss[:30] = np.linspace(1.1, 0.05, 30)  # the start of training
    return loss


def test_batches_holding_a_hard_sample_are_not_spikes():
    for seed in range(3):
        ev = Evidence(steps=_steps(_small_batch_near_perfect_loss(seed=seed)))
        for name in ("loss_spikes", "oscillating_loss"):
            assert not [f for f in _run(name, ev) if f.severity >= Severity.WARNING], (name, seed)


def test_a_real_spike_on_a_small_batch_run_is_still_found():
    loss = _small_batch_near_perfect_loss()
    loss[400:] += 3.0  # the whole batch jumps and stays up: not one sample's doing
    findings = _run("loss_spikes", Evidence(steps=_steps(loss)))
    assert findings and findings[0].severity is Severity.WARNING and findings[0].step == 401


def _overfit_epochs(rise: float) -> pd.DataFrame:
    val = [0.6, 0.2, 0.05, 0.05 * rise]
    train = [0.7, 0.2, 0.02, 0.001]
    return pd.DataFrame({"step": [10, 20, 30, 40], "epoch": range(4), "train_loss": train, "val_loss": val})


class _Fixed(torch.nn.Module):
    """Returns fixed logits per row (the validation rows' per-sample losses are chosen)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits, requires_grad=False)

    def forward(self, x):
        return self.logits[x[:, 0].long()]


def _val(n: int) -> IndexedDataset:
    return IndexedDataset(features=torch.arange(n, dtype=torch.float32)[:, None], labels=torch.zeros(n, dtype=torch.long),
                          index=torch.arange(n), encoder=LabelEncoder((0, 1)), kind="table", name="v")


def test_an_overfitting_rise_within_the_noise_of_a_small_split_is_silent():
    n = 15
    logits = torch.tensor([[6.0, 0.0]] * n)
    logits[0] = torch.tensor([0.0, 1.2])  # one sample carries most of the loss
    small = Evidence(epochs=_overfit_epochs(2.5), model=_Fixed(logits), val=_val(n))
    assert _run("overfitting", small) == []
    # the same rise without the validation data: the old rule alone warns
    assert _run("overfitting", Evidence(epochs=_overfit_epochs(2.5)))[0].severity is Severity.WARNING


def test_an_overfitting_rise_shared_by_many_samples_is_found():
    n = 400
    logits = torch.tensor([[3.0, 0.0]] * n)  # every sample's loss rose alike
    (finding,) = _run("overfitting", Evidence(epochs=_overfit_epochs(2.5), model=_Fixed(logits), val=_val(n)))
    assert finding.severity is Severity.WARNING and finding.evidence["val_samples"] == n
