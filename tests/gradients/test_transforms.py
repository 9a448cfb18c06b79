from __future__ import annotations

import copy
import math

import pytest
import torch

from trainground.gradients import (
    AdaptiveClip,
    ClipByGlobalNorm,
    ClipByValue,
    GradContext,
    PercentileClip,
    SecantTrustRegion,
    SpikeSkip,
    ZScoreClip,
    adaptive_clip_,
    chain,
    clip_by_global_norm_,
    clip_by_value_,
    global_norm,
    noise_scale_terms,
    percentile_clip_,
    secant_ratio,
    zscore_clip_,
)


def _grads(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g) * scale, torch.randn(5, generator=g) * scale]


def _run_chain(transform, grads, params=None):
    return chain(transform).apply_(grads, params)


def test_global_norm_matches_torch_clip_grad_norm():
    grads = _grads(0, 3.0)
    ref = [g.clone() for g in grads]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in ref]
    for p, g in zip(params, ref, strict=True):
        p.grad = g
    expected = torch.nn.utils.clip_grad_norm_(params, 1.0)
    norm = clip_by_global_norm_(grads, 1.0)
    assert torch.allclose(norm, expected)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, params, strict=True))


def test_clipping_twice_equals_clipping_once():
    once = _grads(1, 5.0)
    clip_by_global_norm_(once, 1.0)
    twice = [g.clone() for g in once]
    clip_by_global_norm_(twice, 1.0)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(once, twice, strict=True))
    assert torch.isclose(global_norm(once), torch.tensor(1.0), atol=1e-5)
    v = _grads(2, 5.0)
    clip_by_value_(v, 0.5)
    v2 = [g.clone() for g in v]
    clip_by_value_(v2, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(v, v2, strict=True))


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_classes_agree_with_their_functional_twins(scale):
    grads = _grads(3, scale)
    # global norm
    a, b = [g.clone() for g in grads], [g.clone() for g in grads]
    clip_by_global_norm_(a, 1.0)
    _run_chain(ClipByGlobalNorm(1.0), b)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))
    # value
    a, b = [g.clone() for g in grads], [g.clone() for g in grads]
    clip_by_value_(a, 0.3)
    _run_chain(ClipByValue(0.3), b)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # AGC
    params = [torch.randn_like(g) for g in grads]
    a, b = [g.clone() for g in grads], [g.clone() for g in grads]
    adaptive_clip_(a, params, clipping=0.05)
    _run_chain(AdaptiveClip(0.05), b, params)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))
    # percentile and z-score over a sequence of steps (stateful)
    cls_p, hist, count = PercentileClip(10.0, history=8), torch.full((8,), float("nan")), torch.zeros((), dtype=torch.int64)
    cls_z = ZScoreClip(warmup=3)
    mean, var, zc = torch.zeros(()), torch.zeros(()), torch.zeros((), dtype=torch.int64)
    for step in range(12):
        g = _grads(10 + step, scale * (1 + step % 3))
        a, b = [x.clone() for x in g], [x.clone() for x in g]
        percentile_clip_(a, hist, count, percentile=10.0)
        _run_chain(cls_p, b)
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))
        a, b = [x.clone() for x in g], [x.clone() for x in g]
        zscore_clip_(a, mean, var, zc, warmup=3)
        _run_chain(cls_z, b)
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b, strict=True))


def _feed(transform, steps, start=0):
    outs = []
    for step in range(start, start + steps):
        g = _grads(100 + step, 1.0 + (step % 4))
        ctx = _run_chain(transform, g)
        outs.append((ctx.norm.clone(), ctx.keep.clone()))
    return outs


@pytest.mark.parametrize("make", [
    lambda: PercentileClip(10.0, history=5), lambda: ZScoreClip(warmup=3), lambda: SpikeSkip(warmup=2),
    lambda: ClipByGlobalNorm(2.0), lambda: ClipByValue(0.5),
])
def test_every_transform_state_round_trips(make):
    original = make()
    _feed(original, 7)
    clone = make()
    clone.load_state_dict(copy.deepcopy(original.state_dict()))
    for a, b in zip(_feed(original, 6, start=7), _feed(clone, 6, start=7), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_stateless_options_round_trip():
    a = AdaptiveClip(0.2, eps=1e-2)
    b = AdaptiveClip()
    b.load_state_dict(a.state_dict())
    assert (b.clipping, b.eps) == (0.2, 1e-2)


def test_a_nan_gradient_never_poisons_a_history():
    clip, z, spike = PercentileClip(50.0, history=4), ZScoreClip(warmup=2), SpikeSkip(warmup=1)
    for t in (clip, z, spike):
        _feed(t, 3)
    before = (clip.history.clone(), clip.count.clone(), z.mean.clone(), z.var.clone(), spike.stats.clone())
    bad = [torch.full((4, 3), float("nan")), torch.full((5,), float("inf"))]
    for t in (clip, z, spike):
        ctx = chain(t).apply_([g.clone() for g in bad])
        assert ctx.keep.item() == 0.0
        assert all(torch.isfinite(g).all() for g in ctx.grads)  # a skipped step leaves zeros, not NaN
    after = (clip.history, clip.count, z.mean, z.var, spike.stats)
    assert all(torch.equal(x.nan_to_num(-1.0), y.nan_to_num(-1.0)) for x, y in zip(before, after, strict=True))
    assert torch.isfinite(clip.history.nan_to_num(0)).all()
    norm, _ = _feed(clip, 1, 50)[0]
    assert torch.isfinite(norm)


def test_spike_skip_flags_a_huge_norm_and_keeps_normal_steps():
    spike = SpikeSkip()
    keeps = [k.item() for _, k in _feed(spike, 20)]
    assert keeps == [1.0] * 20
    ctx = chain(spike).apply_(_grads(7, 1e4))
    assert ctx.keep.item() == 0.0 and spike.streak.item() == 1
    assert all((g == 0).all() for g in ctx.grads)


def test_secant_ratio_on_a_quadratic_is_lr_times_curvature():
    # f(x) = lam/2 |x|^2, gradient lam*x, plain GD step u = -lr*g: rho = lr*lam exactly.
    lam, lr = 3.0, 0.5
    x = torch.tensor([1.0, -2.0])
    g0 = lam * x
    u = -lr * g0
    g1 = lam * (x + u)
    rho = secant_ratio(-(g0 @ u), (g1 - g0) @ u)
    assert torch.isclose(rho, torch.tensor(lr * lam))


def test_secant_trust_region_shrinks_on_overshoot_and_regrows():
    trust = SecantTrustRegion(target=1.2)
    flat = torch.zeros(2)
    ctx = GradContext.from_grads([flat], flat=flat)
    for sign in (1, -1, 1, -1, 1, -1):  # successive gradients opposite: bouncing across a valley
        flat.copy_(torch.tensor([sign * 1.0, 0.5 * sign]))
        ctx.raw_norm = global_norm([flat])
        trust(ctx)
        trust.after_step(ctx, flat.clone() * 0.1)  # u = -0.1 g
    assert trust.scale.item() < 0.5
    low = trust.scale.item()
    for _ in range(100):  # agreeing gradients: short steps, the scale regrows (once the EMA forgets)
        flat.copy_(torch.tensor([1.0, 0.5]))
        trust(ctx)
        trust.after_step(ctx, flat.clone() * 0.1)
    assert trust.scale.item() > low


def test_noise_scale_terms_recover_signal_and_trace():
    torch.manual_seed(0)
    dim, b, big, sigma = 20, 4, 32, 0.5
    true_g = torch.linspace(-1, 1, dim)
    g2s, traces = [], []
    for _ in range(4000):
        samples = true_g + sigma * torch.randn(big, dim)
        small_sq = samples[:b].mean(0).pow(2).sum()
        big_sq = samples.mean(0).pow(2).sum()
        g2, tr = noise_scale_terms(small_sq, big_sq, b, big)
        g2s.append(g2)
        traces.append(tr)
    assert abs(torch.stack(g2s).mean() / true_g.pow(2).sum() - 1) < 0.05
    assert abs(torch.stack(traces).mean() / (sigma**2 * dim) - 1) < 0.05


def test_gradient_stats_record_layer_norms_and_the_clipped_fraction():
    from trainground.gradients import GradientStats

    stats = GradientStats(per_layer=True)
    big, small = _grads(1, 10.0), _grads(2, 0.01)
    chain(ClipByGlobalNorm(1.0), stats).apply_([g.clone() for g in big])
    expected = torch.stack([torch.linalg.vector_norm(g) for g in big]) * (1.0 / global_norm(big))
    assert torch.allclose(stats.last["layer_norms"], expected, rtol=1e-5)  # what the optimizer receives
    chain(ClipByGlobalNorm(1.0), stats).apply_([g.clone() for g in small])
    assert stats.clipped_fraction.item() == 0.5
    restored = GradientStats()
    restored.load_state_dict(stats.state_dict())
    assert restored.clipped_fraction.item() == 0.5 and restored.per_layer


@pytest.mark.parametrize("host", [False, True])
def test_percentile_50_clips_at_the_running_median_of_its_window(host):
    from trainground.gradients.context import HostContext

    clip = PercentileClip(50.0, history=4)
    norms = [1.0, 3.0, 2.0, 10.0, 0.5, 4.0]
    # nearest-rank median of the window (current norm included): ranks ceil(0.5 * n) of the last <= 4
    expected = [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    for norm, level in zip(norms, expected, strict=True):
        g = [torch.tensor([norm, 0.0])]
        if host:
            ctx = HostContext(grads=g, params=[], raw_norm=norm)
            clip.host(ctx)
            out = min(norm, ctx.threshold)
        else:
            out = float(_run_chain(clip, g).norm)
        assert out == pytest.approx(min(norm, level), rel=1e-5)


@pytest.mark.parametrize("host", [False, True])
def test_normalize_gives_every_step_the_same_norm_and_leaves_a_bad_one(host):
    from trainground.gradients.context import HostContext
    from trainground.gradients.normalize import NormalizeGlobalNorm

    norm = NormalizeGlobalNorm(2.0)
    for scale in (1e-3, 0.5, 40.0, 0.0, float("nan")):
        g = _grads(3, 1.0)
        g = [x * scale for x in g]
        raw = float(global_norm(g))
        if host:
            ctx = HostContext(grads=g, params=[], raw_norm=raw)
            norm.host(ctx)
            out = ctx.norm
        else:
            out = float(_run_chain(norm, g).norm)
        if raw > 0 and math.isfinite(raw):
            assert out == pytest.approx(2.0, rel=1e-5)  # scaled up as well as down
        elif raw == 0:
            assert out == 0.0  # nothing to normalise
    clone = NormalizeGlobalNorm()
    clone.load_state_dict(norm.state_dict())
    assert clone.level == 2.0
    with pytest.raises(ValueError):
        NormalizeGlobalNorm(0.0)
