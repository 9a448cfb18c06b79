"""The Guard's parts: a custom chain, gradients from someone else's backward, rollback hooks."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from trainground.errors import ConfigError
from trainground.gradients import (
    AdaptiveClip,
    ClipByValue,
    Guard,
    GuardConfig,
    SecantTrustRegion,
    SpikeSkip,
    adaptive_clip_,
    chain,
    clip_by_value_,
)
from trainground.gradients.config import has_recurrent_layers
from trainground.gradients.rollback import RollbackAware

PLAIN = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _data(n: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_a_custom_chain_with_adaptive_and_value_clips_steps_like_the_functions():
    x, y = _data()
    model, ref = _model(), _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.5), config=PLAIN,
                  chain=chain(AdaptiveClip(0.01), ClipByValue(0.05)))
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=len(y))
    assert guard.step()
    nn.functional.cross_entropy(ref(x), y).backward()
    params = list(ref.parameters())
    grads = [p.grad for p in params]
    adaptive_clip_(grads, params, clipping=0.01)
    clip_by_value_(grads, 0.05)
    torch.optim.SGD(params, lr=0.5).step()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_chain_given_as_a_list_replaces_the_configured_one_and_round_trips():
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), chain=[ClipByValue(0.5)])
    assert [type(t).__name__ for t in guard.chain] == ["ClipByValue"]
    guard.chain.transforms[0].clip_value = 0.25
    other = Guard(_model(), torch.optim.SGD(model.parameters(), lr=0.1), chain=[ClipByValue(0.5)])
    other.load_state_dict(copy.deepcopy(guard.state_dict()))
    assert other.chain.transforms[0].clip_value == 0.25


@pytest.mark.parametrize("config", [GuardConfig(), PLAIN, GuardConfig(accumulation=2)])
def test_loss_backward_then_step_trains_and_warns_once(config):
    # The old behaviour was a silent no-op: weights unchanged, grad_norm 0.0.
    x, y = _data()
    model, ref = _model(), _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = Guard(model, opt, config=config)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match="did not come through guard.backward"):
        nn.functional.cross_entropy(model(x), y).backward()
        assert guard.step()
    assert guard.last_stats["grad_norm"] > 0 and guard.last_stats["skipped"] == 0
    nn.functional.cross_entropy(ref(x), y).backward()
    ref_opt.step()
    if config is PLAIN:  # nothing in the chain: exactly the optimizer's step
        for a, b in zip(model.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        assert guard.step()
    assert guard.steps == 2 and all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_an_empty_step_still_does_nothing():
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    assert not guard.step(force=True)
    assert not guard.step_external(loss=1.0)  # no gradient anywhere
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("make_chain", [lambda: None, lambda: [SpikeSkip(), AdaptiveClip(0.05)]],
                         ids=["defaults (float path)", "AGC (tensor path)"])
def test_step_external_equals_guard_backward_on_the_same_gradients(make_chain):
    # Same batches, same chain: gradients written by an outside backward and handed over with
    # their loss and batch size give the same weights as guard.backward.
    x, y = _data(32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)] * 3
    own, ext = _model(), _model()
    g_own = Guard(own, torch.optim.SGD(own.parameters(), lr=0.3, momentum=0.9), chain=make_chain())
    opt_ext = torch.optim.SGD(ext.parameters(), lr=0.3, momentum=0.9)
    g_ext = Guard(ext, opt_ext, chain=make_chain())
    for xb, yb in batches:
        g_own.backward(nn.functional.cross_entropy(own(xb), yb), batch_size=len(yb))
        g_own.step()
        opt_ext.zero_grad()
        loss = nn.functional.cross_entropy(ext(xb), yb)
        loss.backward()
        assert g_ext.step_external(loss=loss, batch_size=len(yb))
    for a, b in zip(own.parameters(), ext.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert float(g_ext.last_stats["loss"]) == pytest.approx(float(g_own.last_stats["loss"]))


def test_step_external_skips_a_spike_and_refuses_a_mixed_window():
    x, y = _data()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    guard = Guard(model, opt)
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        guard.step_external(loss=loss, batch_size=len(y))
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    (nn.functional.cross_entropy(model(x), y) * float("nan")).backward()
    assert guard.step_external(batch_size=len(y))
    assert guard.last_stats["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    acc = Guard(model, opt, config=GuardConfig(accumulation=2))
    acc.backward(nn.functional.cross_entropy(model(x), y), batch_size=len(y))
    with pytest.raises(ConfigError, match="still open"):
        acc.step_external()


def test_rollback_goes_through_the_transforms_hooks():
    model = _model()
    config = GuardConfig(check_every=1, snapshot_every=2, rollback_after=2)
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.05), config=config)
    aware = [t for t in guard.chain if isinstance(t, RollbackAware)]
    assert [type(t) for t in aware] == [SpikeSkip, SecantTrustRegion]  # the percentile clip has no hook
    trust = aware[1]
    x, y = _data()
    for _ in range(8):
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=len(y))
        guard.step()
    healthy = float(guard._snapshot["transforms"][1][1])
    for _ in range(2):
        guard.backward(nn.functional.cross_entropy(model(x * 1e3), (y + 1) % 3), batch_size=len(y))
        guard.step()
    assert guard.actions[-1]["action"] == "rollback"
    assert float(trust.scale) == pytest.approx(healthy * config.rollback_trust)
    assert trust.neg_update is None and int(aware[0].streak) == 0


def test_recurrent_model_gets_no_trust_region_unless_asked():
    class Recurrent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True)
            self.head = torch.nn.Linear(4, 2)

    mlp, rnn = torch.nn.Sequential(torch.nn.Linear(3, 2)), Recurrent()
    assert has_recurrent_layers(rnn) and not has_recurrent_layers(mlp)

    def trusts(model: torch.nn.Module, config: GuardConfig) -> bool:
        guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=config)
        return any(isinstance(t, SecantTrustRegion) for t in guard.chain)

    assert trusts(mlp, GuardConfig())
    assert not trusts(rnn, GuardConfig())
    assert trusts(rnn, GuardConfig(trust_region_recurrent=True))
    assert not trusts(mlp, GuardConfig(trust_region=False))
    assert not trusts(rnn, GuardConfig(trust_region=False, trust_region_recurrent=True))
