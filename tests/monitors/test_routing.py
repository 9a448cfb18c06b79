"""RoutingMonitor: sums training forwards only, one window of rows per compute, state survives."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainground.models import MoE
from trainground.monitors import RoutingMonitor, stat_matrix


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), MoE(8, num_experts=4, k=1, hidden=8, capacity_factor=None))


def test_counts_training_forwards_only_and_resets():
    model = _model()
    monitor = RoutingMonitor(model)
    model(torch.randn(30, 4))
    model.eval()
    model(torch.randn(100, 4))  # evaluation: not counted
    table = monitor.compute_window(5, 0)
    assert stat_matrix(table, "router_tokens").loc[5, "1"] == 30
    load = stat_matrix(table, "expert_load").loc[5].to_numpy()
    assert load.shape == (4,) and np.isclose(load.sum(), 1.0)
    assert stat_matrix(table, "router_dropped_fraction").loc[5, "1"] == 0.0  # no capacity: nothing dropped
    entropy = float(stat_matrix(table, "router_entropy").loc[5, "1"])
    assert 0.0 <= entropy <= 1.0
    monitor.reset()
    assert monitor.compute_window(6, 1).empty


def test_state_dict_round_trip_and_hooks_removed():
    model = _model()
    monitor = RoutingMonitor(model)
    model(torch.randn(16, 4))
    other = RoutingMonitor(_model())
    other.load_state_dict(monitor.state_dict())
    assert other.tokens == monitor.tokens == 16
    monitor.remove()
    model(torch.randn(16, 4))
    assert monitor.tokens == 16


def test_a_model_without_moe_gives_empty_tables():
    assert RoutingMonitor(nn.Linear(2, 2)).compute_window(1, 0).empty
