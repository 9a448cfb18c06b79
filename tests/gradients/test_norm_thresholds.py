"""Dynamic per-part clip limits (AutoClip / ZClip statistics per task and per group)."""

import pytest
import torch
from torch import nn

from trainground.engine.config_io import from_dict
from trainground.engine.run_config import RunConfig
from trainground.errors import ConfigError
from trainground.gradients import DynamicClipConfig, NormThresholds, TaskGradientConfig, TaskGradients
from trainground.gradients.percentile import percentile_threshold
from trainground.gradients.zscore import zscore_threshold


def test_percentile_limits_agree_with_autoclip_per_part():
    gen = torch.Generator().manual_seed(0)
    norms = torch.rand(40, 2, generator=gen) * torch.tensor([1.0, 100.0])
    t = NormThresholds(["a", "b"], DynamicClipConfig(kind="percentile", percentile=10, history=16))
    for step in range(40):
        limits = t.limits(norms[step])
        for part in range(2):  # the reference: AutoClip's function on that part's own ring buffer
            expected = percentile_threshold(t.history[part], 10, min(step + 1, 16))
            assert limits[part] == pytest.approx(float(expected))
    assert 1.0 < float(limits[1]) / float(limits[0])  # each part judged by its own scale


def test_zscore_limits_leave_steady_norms_and_clip_a_spike():
    t = NormThresholds(["a"], DynamicClipConfig(kind="zscore", warmup=5))
    for i in range(30):  # a steady norm (1 +- 0.01) is never clipped
        assert torch.isinf(t.limits(torch.tensor([1.0 + 0.01 * (-1) ** i]))).all()
    mean, var = t.mean.clone(), t.var.clone()
    spike = torch.tensor([50.0])
    limit = t.limits(spike)
    assert float(limit) == pytest.approx(float(zscore_threshold(mean, var, spike, z_thresh=2.5)))
    assert 1.0 < float(limit) < 2.0


def test_a_fixed_cap_stays_on_top_and_nan_never_enters_the_history():
    t = NormThresholds(["a"], DynamicClipConfig(kind="percentile", percentile=50))
    assert float(t.limits(torch.tensor([10.0]), torch.tensor([3.0]))) == 3.0
    t.limits(torch.tensor([float("nan")]))
    assert int(t.count) == 1


def task_setup(dynamic):
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(4, 8), nn.Linear(8, 1), nn.Linear(8, 1)
    params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    tg = TaskGradients(params, shared=trunk, groups={"a": head_a, "b": head_b, "trunk": trunk}, dynamic=dynamic)
    return trunk, head_a, head_b, params, tg


def step(trunk, head_a, head_b, params, tg, scale_b):
    x = torch.randn(16, 4)
    h = trunk(x)
    for p in params:
        p.grad = None
    tg.backward({"a": head_a(h).pow(2).mean(), "b": scale_b * head_b(h).pow(2).mean()})
    return tg.stats()


def test_task_gradients_clip_each_task_at_its_own_history_not_at_a_fixed_number():
    parts = task_setup(DynamicClipConfig(kind="percentile", percentile=50))
    for _ in range(20):
        step(*parts, scale_b=1.0)
    quiet = step(*parts, scale_b=1.0)
    loud = step(*parts, scale_b=100.0)  # task b suddenly 100x louder: clipped back to its own median
    assert loud["task_clip_scale/b"] < 0.05 and loud["task_clip_scale/a"] == pytest.approx(quiet["task_clip_scale/a"], abs=0.5)
    state = parts[-1].state_dict()
    fresh = task_setup(DynamicClipConfig(kind="percentile", percentile=50))[-1]
    fresh.load_state_dict(state)
    assert torch.allclose(fresh.task_thresholds.history, parts[-1].task_thresholds.history, equal_nan=True)
    assert torch.equal(fresh.group_thresholds.count, parts[-1].group_thresholds.count)


def test_groups_need_a_fixed_or_a_dynamic_limit():
    with pytest.raises(ConfigError, match="group_max_norm"):
        task_setup(None)
    task_setup(DynamicClipConfig(kind="zscore"))  # a dynamic limit is enough


def test_dynamic_limits_are_selectable_from_yaml():
    config = from_dict(RunConfig, {"tasks": {"dynamic": {"kind": "zscore", "z_thresh": 3.0}}}, "run.yaml")
    assert config.tasks.enabled and config.tasks.dynamic == DynamicClipConfig(kind="zscore", z_thresh=3.0)
    built = config.tasks.build(nn.Linear(2, 2).parameters())
    assert built.dynamic.kind == "zscore"
    with pytest.raises(ConfigError):
        from_dict(TaskGradientConfig, {"dynamic": {"kind": "median"}}, "run.yaml")
