"""Effective rank against known spectra; the head's pre-hook sees what ``embed`` returns."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainground.models import MLP
from trainground.monitors import (
    LossHistory,
    PredictionMonitor,
    RepresentationMonitor,
    effective_rank,
    penultimate_module,
    representation_stats,
    stat_matrix,
)


def test_effective_rank_of_known_spectra():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200))
    k = 6
    # Equal singular values on k orthogonal, zero-mean directions: effective rank k.
    x = torch.cat([q[:, :k], -q[:, :k]]) * 3.0
    assert abs(effective_rank(x).item() - k) < 1e-3
    rank1 = torch.randn(100, 1) * torch.randn(1, 20)
    assert abs(effective_rank(rank1).item() - 1.0) < 1e-3
    assert effective_rank(torch.ones(10, 5)).item() == 0.0


def test_spread_zero_for_identical_rows_and_nan_rows_dropped():
    stats = representation_stats(torch.ones(10, 4))
    assert stats["spread"] == 0.0 and stats["effective_rank"] == 0.0
    x = torch.randn(20, 4)
    x[3] = float("nan")
    assert np.isfinite(representation_stats(x)["effective_rank"])


def test_penultimate_is_head_or_last_linear():
    mlp = MLP(5, 3, hidden=(8,))
    assert penultimate_module(mlp)[1] is mlp.head
    seq = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    assert penultimate_module(seq)[0] == "2"


def test_prehook_captures_embed():
    torch.manual_seed(0)
    model = MLP(5, 3, hidden=(8, 4))
    monitor = RepresentationMonitor(model, rows_per_batch=100)
    x = torch.randn(30, 5)
    monitor.arm()
    model(x)
    monitor.disarm()
    torch.testing.assert_close(monitor._chunks[0], model.embed(x).detach())
    table = monitor.compute_window(1, 0)
    assert stat_matrix(table, "num_classes").iloc[0, 0] == 3
    assert stat_matrix(table, "width").iloc[0, 0] == 4


def test_loss_history_and_state_roundtrip():
    history = LossHistory()
    for step in range(1, 600):
        history.update(step, 0, torch.tensor(1.0 / step), lr=0.1)
    steps = history.compute()
    assert len(steps) == 599 and np.allclose(steps["loss"], 1.0 / np.arange(1, 600))
    other = LossHistory()
    other.load_state_dict(history.state_dict())
    assert other.compute().equals(steps)


def test_prediction_fractions():
    monitor = PredictionMonitor(3)
    monitor.update(torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]))
    got = monitor.compute()["train"]
    assert got["fractions"] == [0.5, 0.25, 0.25] and got["max_fraction"] == 0.5
    assert abs(got["entropy_ratio"] - (-(0.5 * np.log(0.5) + 0.5 * np.log(0.25))) / np.log(3)) < 1e-9
