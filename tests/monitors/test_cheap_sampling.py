"""The sampled steps' cheaper arithmetic reports what the direct definitions give (float rounding
only): activation sums vs ``batch_activation_stats``, per-parameter norms vs per-layer norms,
the loss history's host floats vs the Guard's tensors, and old checkpoints still load."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainground.gradients.update import FloatStats
from trainground.monitors import (
    ActivationMonitor,
    GradientMonitor,
    LossHistory,
    batch_activation_stats,
    representation_stats,
    stat_matrix,
)
from trainground.monitors.activations import _BOUNDS
from trainground.monitors.history import GUARD_COLUMNS


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 12), nn.GELU(),
                         nn.Linear(12, 3))


def test_activation_rows_match_batch_stats_on_a_fixed_run():
    torch.manual_seed(0)
    model = _net()
    monitor = ActivationMonitor(model)
    expected = []
    for step in range(4):
        x = torch.randn(32, 8) * (step + 1)
        outs = {}
        handles = [m.register_forward_hook(lambda m, i, o, name=name: outs.__setitem__(name, o))
                   for name, m, _ in monitor.modules]
        monitor.arm(step, 0)
        model(x)
        monitor.disarm()
        for h in handles:
            h.remove()
        expected.append([batch_activation_stats(outs[name], kind, _BOUNDS.get(type(m)))[0].double().numpy()
                         for name, m, kind in monitor.modules])
    table = monitor.compute()
    want = np.array(expected)  # [steps, layers, 4]
    for k, stat in enumerate(("act_mean", "act_var", "inactive_fraction")):
        got = stat_matrix(table, stat)[monitor.names].to_numpy()
        np.testing.assert_allclose(got, want[:, :, k], rtol=1e-5, atol=1e-7)
    saturation = stat_matrix(table, "saturation")[monitor.names].to_numpy()
    np.testing.assert_allclose(saturation[:, 1], want[:, 1, 3], rtol=1e-6)  # the Tanh
    assert np.isnan(saturation[:, [0, 2]]).all()  # rectifiers have no saturation


def test_activation_checkpoint_of_the_old_row_format_gives_the_same_table():
    torch.manual_seed(1)
    model = _net()
    monitor = ActivationMonitor(model)
    monitor.arm(1, 0)
    model(torch.randn(16, 8))
    monitor.disarm()
    table = monitor.compute()
    # Before the sums, a row held the final [layers, 4] statistics.
    old_rows = [(1, 0, torch.tensor(np.stack([stat_matrix(table, s)[monitor.names].to_numpy()[0]
                                              for s in ("act_mean", "act_var", "inactive_fraction", "saturation")],
                                             axis=1)).nan_to_num(0.0).float())]
    other = ActivationMonitor(model)
    other.load_state_dict({"rows": old_rows, "ever_active": {}, "seen": 16})
    again = other.compute()
    for stat in ("act_mean", "act_var", "inactive_fraction", "saturation"):
        np.testing.assert_allclose(stat_matrix(again, stat).to_numpy(), stat_matrix(table, stat).to_numpy(),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scale", [1.0, 4.0, torch.tensor(8.0)])
def test_gradient_norms_match_per_layer_norms(scale):
    torch.manual_seed(2)
    model = _net()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    monitor = GradientMonitor(model)
    loss = model(torch.randn(32, 8)).square().mean() * float(scale)
    loss.backward()
    grads = {name: math.sqrt(sum(float(p.grad.square().sum()) for p in ps)) / float(scale)
             for name, ps in monitor.layers}
    before = {name: [p.detach().clone() for p in ps] for name, ps in monitor.layers}
    monitor.update(1, 0, grad_scale=scale)
    opt.step()
    monitor.update_after_step()
    table = monitor.compute()
    for name, ps in monitor.layers:
        update = math.sqrt(sum(float((p.detach() - b).square().sum()) for p, b in zip(ps, before[name], strict=True)))
        weight = math.sqrt(sum(float(p.detach().square().sum()) for p in ps))
        assert stat_matrix(table, "grad_norm")[name].iloc[0] == pytest.approx(grads[name], rel=1e-5)
        assert stat_matrix(table, "update_norm")[name].iloc[0] == pytest.approx(update, rel=1e-4)
        assert stat_matrix(table, "weight_norm")[name].iloc[0] == pytest.approx(weight, rel=1e-5)
    # a checkpoint written before the host grad scale (five columns, norms already divided)
    state = monitor.state_dict()
    old = {"rows": [(s, e, v.clone(), t, g) for s, e, v, t, g, c in state["rows"]]}
    old["rows"][0][2][: len(monitor.params)] /= state["rows"][0][5]
    other = GradientMonitor(model)
    other.load_state_dict(old)
    np.testing.assert_allclose(stat_matrix(other.compute(), "grad_norm").to_numpy(),
                               stat_matrix(table, "grad_norm").to_numpy(), rtol=1e-6)


def test_loss_history_host_floats_equal_the_guard_tensors():
    stats = [{"grad_norm": 1.1 * i, "clip_threshold": 0.3 + i, "update_scale": 1.0 / (i + 1), "skipped": 0.0}
             for i in range(5)]
    host, device = LossHistory(), LossHistory()
    for i, s in enumerate(stats):
        loss = torch.tensor(2.0 / (i + 1), requires_grad=True) * 1.0
        host.update(i, 0, loss, 0.1, guard=FloatStats(dict(s)))
        device.update(i, 0, loss, 0.1, guard={k: torch.tensor(v) for k, v in s.items()})
    host.update(5, 0, torch.tensor(0.5), 0.1)  # a step without the Guard: NaN columns
    device.update(5, 0, torch.tensor(0.5), 0.1)
    a, b = host.compute(), device.compute()
    assert list(a.columns) == ["step", "epoch", "loss", "lr", *GUARD_COLUMNS]
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # float32 rounding both ways
    assert a["grad_norm"].iloc[3] == float(np.float32(1.1 * 3))
    assert np.isnan(a["grad_norm"].iloc[5])


def test_representation_stats_finite_fast_path_equals_filtered_path():
    torch.manual_seed(3)
    x = torch.randn(200, 16) @ torch.randn(16, 16)
    bad = torch.cat([x, torch.full((3, 16), float("nan"))])
    assert representation_stats(bad) == pytest.approx(representation_stats(x), rel=1e-6)
