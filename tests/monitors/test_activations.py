"""ActivationMonitor: dead units, saturation and moments agree with direct computations;
hooks exist only while armed."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainground.monitors import (
    ActivationMonitor,
    activation_kind,
    batch_activation_stats,
    stat_matrix,
)


def test_activation_kinds():
    assert activation_kind(nn.ReLU()) == "rectifier"
    assert activation_kind(nn.Sigmoid()) == "bounded"
    assert activation_kind(nn.Linear(2, 2)) is None


def test_batch_stats_match_definitions():
    out = torch.sigmoid(torch.tensor([[-10.0, 0.0], [10.0, 0.1], [0.0, -0.2]]))
    stats, active = batch_activation_stats(out, "bounded", (0.0, 1.0))
    mean, var, inactive, saturated = stats.tolist()
    assert abs(mean - out.mean().item()) < 1e-6 and abs(var - out.var(unbiased=False).item()) < 1e-6
    assert abs(saturated - 2 / 6) < 1e-6  # sigmoid(-10) and sigmoid(10) are within 1 % of a bound
    assert inactive == 0.0 and active.tolist() == [True, True]
    relu = torch.relu(torch.tensor([[1.0, -1.0, 0.0], [2.0, -3.0, 0.0]]))
    stats, active = batch_activation_stats(relu, "rectifier", None)
    assert active.tolist() == [True, False, False]
    assert abs(stats[2].item() - 4 / 6) < 1e-6


def test_conv_units_are_channels():
    out = torch.zeros(4, 3, 5, 5)
    out[:, 1, 2, 2] = 1.0
    _, active = batch_activation_stats(out, "rectifier", None)
    assert active.tolist() == [False, True, False]


def _model(bias: float) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].bias.fill_(bias)
    return model


def test_dead_fraction_all_dead_with_very_negative_bias():
    model = _model(-100.0)
    monitor = ActivationMonitor(model, min_samples=64)
    for step in range(4):
        monitor.arm(step, 0)
        model(torch.randn(32, 4))
        monitor.disarm()
    dead = stat_matrix(monitor.compute_window(4, 0), "dead_fraction")
    assert dead["1"].iloc[0] == 1.0
    table = monitor.compute()
    assert set(table["layer"]) == {"1", "3"}
    assert stat_matrix(table, "saturation")["3"].notna().all()  # bounded layer only


def test_dead_fraction_matches_direct_count_and_window_waits_for_min_samples():
    model = _model(0.0)
    monitor = ActivationMonitor(model, min_samples=100)
    xs = [torch.randn(32, 4) for _ in range(4)]
    for i, x in enumerate(xs[:3]):
        monitor.arm(i, 0)
        model(x)
        monitor.disarm()
    assert monitor.compute_window(3, 0).empty  # 96 < 100 samples: keeps accumulating
    monitor.arm(3, 0)
    model(xs[3])
    monitor.disarm()
    with torch.no_grad():
        ever = torch.relu(model[0](torch.cat(xs))).gt(0).any(0)
    dead = stat_matrix(monitor.compute_window(4, 0), "dead_fraction")["1"].iloc[0]
    assert np.isclose(dead, 1 - ever.float().mean().item())


def test_hooks_exist_only_while_armed():
    model = _model(0.0)
    monitor = ActivationMonitor(model)
    assert all(not m._forward_hooks for m in model.modules())
    monitor.arm(0, 0)
    assert model[1]._forward_hooks
    model(torch.randn(2, 4))
    monitor.disarm()
    assert all(not m._forward_hooks for m in model.modules())
    model(torch.randn(2, 4))  # unarmed: nothing recorded
    assert len(monitor.compute()["step"].unique()) == 1
