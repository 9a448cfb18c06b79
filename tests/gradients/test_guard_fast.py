"""The Guard's CPU (host) path against its tensor path, and the cheap-update helpers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainground.gradients import (
    Guard,
    GuardConfig,
    PercentileClip,
    SecantTrustRegion,
    SpikeSkip,
    ZScoreClip,
    chain,
    flat_buffer,
)
from trainground.gradients.context import HostContext
from trainground.gradients.update import FloatStats, skip_step_, step_scaled


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _batches(n: int, seed: int = 1, poison_at: int | None = None):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        out.append((x * 1e3, (y + 1) % 3) if i == poison_at else (x, y))
    return out


class TensorOnly:
    """Wraps a transform and hides its float path, so the Guard takes the tensor path."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, ctx) -> None:
        self.inner(ctx)

    def after_step(self, ctx, neg_update) -> None:
        hook = getattr(self.inner, "after_step", None)
        if hook is not None:
            hook(ctx, neg_update)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state)


def _run(config: GuardConfig, opt_cls, lr: float, *, tensor_path: bool, batches):
    model = _model()
    opt = opt_cls(model.parameters(), lr=lr)
    guard = Guard(model, opt, config=config)
    if tensor_path:
        guard.chain.transforms = [TensorOnly(t) for t in guard.chain.transforms]
    skipped = []
    for x, y in batches:
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=len(y))
        guard.step()
        skipped.append((float(guard.last_stats["skipped"]), float(guard.last_stats["update_scale"])))
    return model, guard, skipped


@pytest.mark.parametrize("opt_cls,lr", [(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), 0.5),
                                        (torch.optim.Adam, 0.05), (torch.optim.Rprop, 0.01)])
@pytest.mark.parametrize("accumulation,flat", [(1, True), (1, False), (2, True)])
def test_the_host_path_agrees_with_the_tensor_path(opt_cls, lr, accumulation, flat, monkeypatch):
    # Default chain (spike skip, percentile clip, secant trust region) with a poisoned batch:
    # the float path must clip, skip and shrink the update as the tensor path does.
    # Rprop is not lr-linear: its trust-region share is applied by interpolating the weights.
    # flat=False: tensors count as large, so K=1 keeps autograd's gradients (per-tensor dots).
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 1 << 16 if flat else 0)
    batches = _batches(40, poison_at=25)
    # The loss gate off: the trust region must act here whatever the loss does (this compares paths).
    config = GuardConfig(accumulation=accumulation, check_every=5, trust_loss_gate=False)
    host_model, host_guard, host_skips = _run(config, opt_cls, lr, tensor_path=False, batches=batches)
    dev_model, dev_guard, dev_skips = _run(config, opt_cls, lr, tensor_path=True, batches=batches)
    assert (host_guard._flat is not None) == flat
    assert [s for s, _ in host_skips] == [s for s, _ in dev_skips] and any(s == 1.0 for s, _ in host_skips)
    for a, b in zip(host_model.parameters(), dev_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert min(u for _, u in host_skips) < 0.9  # the trust region acted
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(host_skips, dev_skips, strict=True))
    assert [a["step"] for a in host_guard.actions] == [a["step"] for a in dev_guard.actions]


def test_host_transforms_match_their_tensor_twins_step_by_step():
    host = [SpikeSkip(warmup=2), PercentileClip(20.0, history=6), ZScoreClip(warmup=3)]
    dev = copy.deepcopy(host)
    g = torch.Generator().manual_seed(0)
    for step in range(30):
        grad = torch.randn(10, generator=g) * (1 + step % 4) * (50.0 if step == 17 else 1.0)
        if step == 21:
            grad[0] = float("nan")
        loss = torch.tensor(0.5 + 0.1 * (step % 3))
        dctx = chain(*dev).apply_([grad.clone()], loss=loss)
        hctx = HostContext([grad.clone()], [], raw_norm=float(torch.linalg.vector_norm(grad)), loss=float(loss))
        chain(*host).host(hctx)
        assert (hctx.keep > 0) == bool(dctx.keep > 0)
        if hctx.keep > 0:
            assert abs(hctx.threshold - float(dctx.threshold)) <= 1e-5 * max(1.0, hctx.threshold)
            assert abs(hctx.norm - float(dctx.norm)) <= 1e-4 * max(1.0, hctx.norm)


@pytest.mark.parametrize("make", [
    lambda: SpikeSkip(warmup=2), lambda: PercentileClip(30.0, history=5), lambda: ZScoreClip(warmup=2),
])
def test_host_state_round_trips_exactly(make):
    original = make()
    norms = [1.0, 2.0, 1.5, 3.0, 0.7, 2.2, 1.1, 9.0, 1.3, 1.4, 2.5, 1.9]
    for v in norms[:6]:
        original.host(HostContext([], [], raw_norm=v, loss=v / 2))
    clone = make()
    clone.load_state_dict(copy.deepcopy(original.state_dict()))
    for v in norms[6:]:
        a, b = HostContext([], [], raw_norm=v, loss=v / 2), HostContext([], [], raw_norm=v, loss=v / 2)
        original.host(a)
        clone.host(b)
        assert (a.scale, a.keep, a.threshold) == (b.scale, b.keep, b.threshold)


@pytest.mark.parametrize("make", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
                                  lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)])
def test_an_lr_scaled_step_equals_the_interpolated_one(make):
    a, b = _model(), _model()
    opt_a, opt_b = make(a.parameters()), make(b.parameters())
    for _ in range(3):
        for model, opt in ((a, opt_a), (b, opt_b)):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.3) + p.detach()
        assert step_scaled(opt_a, 0.37)
        old = [p.detach().clone() for p in b.parameters()]
        opt_b.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(b.parameters()), old, 1 - 0.37)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]  # restored


def test_a_skipped_step_restores_the_weights_and_steps_the_optimizer_on_zeros():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    before = [p.detach().clone() for p in params]
    momentum = [opt.state[p]["momentum_buffer"].clone() for p in params]
    for p in params:
        p.grad = torch.full_like(p, float("nan"))
    skip_step_(opt, params, [p.grad for p in params])
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))
    assert all(torch.allclose(opt.state[p]["momentum_buffer"], 0.9 * m) for p, m in zip(params, momentum, strict=True))


def test_k1_without_trust_region_keeps_autograd_gradients():
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig(trust_region=False))
    x, y = _batches(1)[0]
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
    assert guard._flat is None and guard._old is None
    assert guard.step() and all(p.grad is None for p in model.parameters())
    assert isinstance(guard.last_stats, FloatStats) and guard.last_stats["grad_norm"] > 0


def test_a_sparse_trust_secant_round_trips_and_keeps_the_benchmark_maths():
    batches = _batches(24)
    config = GuardConfig(trust_every=3)
    model, guard, _ = _run(config, torch.optim.Adam, 0.05, tensor_path=False, batches=batches[:10])
    state = copy.deepcopy((model.state_dict(), guard.optimizer.state_dict(), guard.state_dict()))
    for x, y in batches[10:]:
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
        guard.step()
    model2 = _model(3)
    model2.load_state_dict(state[0])
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.05)
    opt2.load_state_dict(state[1])
    guard2 = Guard(model2, opt2, config=config)
    guard2.load_state_dict(state[2])
    for x, y in batches[10:]:
        guard2.backward(nn.functional.cross_entropy(model2(x), y), batch_size=8)
        guard2.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters(), strict=True))
    trust = next(t for t in guard.chain if isinstance(t, SecantTrustRegion))
    assert trust.every == 3 and trust.tick == 24


def test_k1_with_the_flat_buffer_holds_the_plain_mean_gradient():
    # A one-micro-batch window in the flat buffer (trust region on a small model) keeps autograd's
    # mean gradient as it is: no batch-size weighting to undo with a pass over the buffer.
    model, plain = _model(), _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig())
    x, y = _batches(1)[0]
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=7)
    nn.functional.cross_entropy(plain(x), y).backward()
    assert guard._flat is not None and guard.grad_scale == 1.0
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(model.parameters(), plain.parameters(), strict=True))
    # A second micro-batch in the same window (K = 1, step not called) turns them into sums.
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=7)
    assert guard.grad_scale == 14.0
    assert all(torch.allclose(p.grad, 14 * q.grad, atol=1e-6) for p, q in zip(model.parameters(), plain.parameters(), strict=True))
