"""ZClip's level-shift rule (issue 15, fifth pass): the EMA follows a lasting rise, spikes stay clipped."""

from __future__ import annotations

import copy

import pytest
import torch

from trainground.gradients import GuardConfig, ZScoreClip, chain, zscore_clip_
from trainground.gradients.context import HostContext


def _norms(rise_at: int = 100, steps: int = 400, factor: float = 5.0) -> list[float]:
    """A norm around 0.15 (10 % noise) that rises ``factor``-fold at ``rise_at`` and stays there."""
    g = torch.Generator().manual_seed(0)
    return [(0.15 if t < rise_at else 0.15 * factor) * (1 + 0.1 * float(torch.randn((), generator=g)))
            for t in range(steps)]


def _clipped(z: ZScoreClip, norms: list[float], host: bool) -> list[bool]:
    """Feed ``norms`` (as one-tensor gradients of that norm) and record which steps were clipped."""
    out = []
    for n in norms:
        if host:
            ctx = HostContext([], [], raw_norm=n, loss=1.0)
            z.host(ctx)
            out.append(ctx.threshold < n)
        else:
            ctx = chain(z).apply_([torch.tensor([n])])
            out.append(float(ctx.norm) < n * (1 - 1e-6))
    return out


@pytest.mark.parametrize("host", [True, False])
def test_published_zclip_locks_after_a_level_rise_and_the_rule_follows(host):
    norms = _norms()
    old = _clipped(ZScoreClip(), norms, host)
    new = _clipped(ZScoreClip(follow_level_shift=True), norms, host)
    # the published ZClip (EMA fed the clipped norm) clips every step after the rise: it locks
    assert sum(old[200:]) == 200
    # with the rule the statistics reach the new level within the EMA's horizon and clipping stops
    assert sum(new[200:]) <= 5
    assert sum(new[100:200]) < 60


@pytest.mark.parametrize("host", [True, False])
def test_isolated_spikes_are_still_clipped_and_fed_clipped(host):
    norms = _norms(rise_at=10**9)
    for t in (150, 230, 310):
        norms[t] = 20 * norms[t]
    old, new = ZScoreClip(), ZScoreClip(follow_level_shift=True)
    a, b = _clipped(old, norms, host), _clipped(new, norms, host)
    assert a == b and all(b[t] for t in (150, 230, 310))
    assert float(new.mean) == pytest.approx(float(old.mean))  # the spikes did not reach the statistics
    assert float(new.rate) < 0.2


def test_functional_twin_and_host_path_match_the_tensor_path():
    norms = _norms()
    host, dev = ZScoreClip(follow_level_shift=True), ZScoreClip(follow_level_shift=True)
    mean, var, count, rate = torch.zeros(()), torch.zeros(()), torch.zeros((), dtype=torch.int64), torch.zeros(())
    for n in norms:
        grads = [torch.tensor([n, 0.0])]
        threshold = zscore_clip_(grads, mean, var, count, rate=rate)
        ctx = chain(dev).apply_([torch.tensor([n, 0.0])])
        hctx = HostContext([], [], raw_norm=n, loss=1.0)
        host.host(hctx)
        assert float(grads[0][0]) == pytest.approx(float(ctx.norm), rel=1e-5)
        assert min(n, hctx.threshold) == pytest.approx(min(n, float(threshold)), rel=1e-4)
    assert float(dev.mean) == pytest.approx(float(mean), rel=1e-5) == pytest.approx(host.mean, rel=1e-4)


@pytest.mark.parametrize("host", [True, False])
def test_state_round_trips_mid_shift_and_old_checkpoints_load(host):
    norms = _norms()
    original = ZScoreClip(follow_level_shift=True)
    _clipped(original, norms[:115], host)
    assert float(original.rate) > 0  # mid-shift: the firing EMA is part of the state
    clone = ZScoreClip()
    clone.load_state_dict(copy.deepcopy(original.state_dict()))
    assert clone.follow_level_shift
    assert _clipped(original, norms[115:], host) == _clipped(clone, norms[115:], host)
    legacy = {k: v for k, v in ZScoreClip().state_dict().items() if k not in ("rate", "follow_level_shift")}
    restored = ZScoreClip(follow_level_shift=True)
    restored.load_state_dict(legacy)  # a checkpoint from before the rule: published ZClip, rate 0
    assert not restored.follow_level_shift and float(restored.rate) == 0.0


def test_guard_config_follows_by_default_and_keeps_published_zclip_as_an_option():
    def zclip(cfg: GuardConfig) -> ZScoreClip:
        return next(t for t in cfg.build_chain().transforms if isinstance(t, ZScoreClip))
    assert zclip(GuardConfig()).follow_level_shift  # adopted (issue 15, fifth pass)
    assert zclip(GuardConfig.for_games()).follow_level_shift
    assert ZScoreClip().follow_level_shift is False  # the bare class stays ZClip as published
    assert zclip(GuardConfig(zscore_follow_level_shift=True)).follow_level_shift
    assert zclip(GuardConfig(zscore_follow_level_shift=False)).follow_level_shift is False
