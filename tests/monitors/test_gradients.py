"""GradientMonitor: norms agree with a direct computation; update = lr * gradient for plain SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainground.monitors import (
    GradientMonitor,
    layer_norms,
    parameter_layers,
    stat_matrix,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


def _step(model: nn.Module, monitor: GradientMonitor, opt: torch.optim.Optimizer, step: int) -> None:
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    monitor.update(step, 0)
    opt.step()
    monitor.update_after_step()


def test_layer_norms_match_direct_norms():
    tensors = [torch.randn(3, 4), torch.randn(4), torch.randn(2, 2)]
    got = layer_norms(tensors, torch.tensor([0, 0, 1]), 2)
    want = torch.stack([torch.cat([tensors[0].flatten(), tensors[1]]).norm(), tensors[2].norm()])
    torch.testing.assert_close(got, want)


def test_parameter_layers_are_modules_owning_parameters():
    assert [name for name, _ in parameter_layers(_net())] == ["0", "2"]


def test_grad_norm_and_sgd_update_equal_lr_times_gradient():
    model = _net()
    monitor = GradientMonitor(model)
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    nn.functional.cross_entropy(model(x), y).backward()
    expected_grad = [torch.cat([p.grad.flatten() for p in m.parameters()]).norm().item() for m in (model[0], model[2])]
    monitor.update(1, 0)
    opt.step()
    monitor.update_after_step()
    table = monitor.compute()
    grad = stat_matrix(table, "grad_norm").iloc[0].to_numpy()
    update = stat_matrix(table, "update_norm").iloc[0].to_numpy()
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5)
    np.testing.assert_allclose(update, lr * grad, rtol=1e-4)  # plain SGD: delta w = -lr g
    ratio = stat_matrix(table, "update_ratio").iloc[0].to_numpy()
    weight = stat_matrix(table, "weight_norm").iloc[0].to_numpy()
    np.testing.assert_allclose(ratio, update / weight, rtol=1e-6)


def test_frozen_layer_reports_no_grad_and_zero_update():
    model = _net()
    for p in model[0].parameters():
        p.requires_grad_(False)
    monitor = GradientMonitor(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(1, 4):
        _step(model, monitor, opt, step)
    table = monitor.compute()
    assert (stat_matrix(table, "update_norm")["0"] == 0).all()
    assert (stat_matrix(table, "update_norm")["2"] > 0).all()
    assert stat_matrix(table, "trainable")["0"].max() == 0
    assert stat_matrix(table, "has_grad")["0"].max() == 0


def test_reset_and_state_dict_roundtrip():
    model = _net()
    monitor = GradientMonitor(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _step(model, monitor, opt, 1)
    state = monitor.state_dict()
    other = GradientMonitor(model)
    other.load_state_dict(state)
    assert other.compute().equals(monitor.compute())
    monitor.reset()
    assert monitor.compute().empty


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradients_are_kept_not_hidden(bad):
    model = _net()
    monitor = GradientMonitor(model)
    model(torch.randn(2, 5)).sum().backward()
    model[0].weight.grad[0, 0] = bad
    monitor.update(1, 0)
    torch.optim.SGD(model.parameters(), lr=0.0).step()
    monitor.update_after_step()
    grad = stat_matrix(monitor.compute(), "grad_norm")
    assert not np.isfinite(grad["0"].iloc[0]) and np.isfinite(grad["2"].iloc[0])
