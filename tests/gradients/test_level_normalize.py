"""Level normalisation (issue 15, sixth pass candidate): the norm's slow trend is removed, its fast fluctuation kept."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from trainground.gradients import chain
from trainground.gradients.context import HostContext
from trainground.gradients.level_normalize import LevelNormalize


class Rec(nn.Module):
    """A small LSTM regressor: a recurrent model for the chain's choice."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.LSTM(2, 8, batch_first=True), nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _feed(t: LevelNormalize, norms: list[float], host: bool) -> list[float]:
    out = []
    for n in norms:
        if host:
            ctx = HostContext([], [], raw_norm=n, loss=1.0)
            t.host(ctx)
            out.append(n * ctx.scale)
        else:
            out.append(float(chain(t).apply_([torch.tensor([n])]).norm))
    return out


@pytest.mark.parametrize("host", [True, False])
def test_a_tenfold_fall_of_the_level_is_removed_within_its_horizon(host):
    norms = [2.2] * 10 + [0.2] * 90
    out = _feed(LevelNormalize(), norms, host)
    assert out[0] == pytest.approx(1.0, rel=1e-5)  # the first step is its own level
    assert out[9] == pytest.approx(1.0, rel=1e-5)
    assert out[10] < 0.2  # just after the fall the old level still dominates
    assert out[60] == pytest.approx(1.0, rel=5e-2)  # 5 horizons later the plateau is back near 1
    # plain Adam would see the plateau 11x below the first steps; here the ratio is ~1
    assert out[99] / out[0] == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize("host", [True, False])
def test_fast_fluctuation_is_kept(host):
    norms = [0.2] * 50 + [0.4] + [0.2] * 5
    out = _feed(LevelNormalize(), norms, host)
    assert out[50] / out[49] > 1.7  # one larger batch still counts larger (per-step normalisation: 1)


@pytest.mark.parametrize("host", [True, False])
def test_non_finite_or_zero_norm_is_left_alone(host):
    t = LevelNormalize()
    _feed(t, [0.5, 0.5], host)
    before = {k: float(v) for k, v in t.state_dict().items() if k != "decay"}
    if host:
        for bad in (math.inf, 0.0):
            ctx = HostContext([], [], raw_norm=bad, loss=1.0)
            t.host(ctx)
            assert ctx.scale == 1.0
    else:
        chain(t).apply_([torch.tensor([float("nan")])])
        chain(t).apply_([torch.tensor([0.0])])
    assert {k: float(v) for k, v in t.state_dict().items() if k != "decay"} == pytest.approx(before)


def test_host_and_tensor_paths_agree_and_state_round_trips():
    g = torch.Generator().manual_seed(0)
    norms = [float(0.2 * torch.exp(0.5 * torch.randn((), generator=g))) for _ in range(100)]
    a, b = LevelNormalize(), LevelNormalize()
    assert _feed(a, norms, True) == pytest.approx(_feed(b, norms, False), rel=1e-5)
    c = LevelNormalize(decay=0.5)
    c.load_state_dict(b.state_dict())
    assert c.decay == 0.9
    assert _feed(c, [0.3], False) == pytest.approx(_feed(a, [0.3], True), rel=1e-5)


def test_rejects_bad_decay():
    with pytest.raises(ValueError):
        LevelNormalize(decay=1.0)


@pytest.mark.parametrize("mode", ["full", "fall"])
def test_the_option_puts_it_last_on_recurrent_models_under_adam_only_and_equals_the_benchmark_row(mode):
    from trainground.gradients import Guard, GuardConfig

    on = GuardConfig(recurrent_level=mode)
    mlp = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    adam = torch.optim.Adam(mlp.parameters())
    assert [type(t) for t in on.build_chain(mlp, adam)] == [type(t) for t in GuardConfig().build_chain(mlp, adam)]
    rec = Rec()
    last = list(on.build_chain(rec, torch.optim.AdamW(rec.parameters())))[-1]
    assert isinstance(last, LevelNormalize) and last.only_up == (mode == "fall")
    # not under SGD (a rescaling would change its learning rate), nor when the optimizer is unknown
    assert not any(isinstance(t, LevelNormalize) for t in on.build_chain(rec, torch.optim.SGD(rec.parameters(), 0.1)))
    assert not any(isinstance(t, LevelNormalize) for t in on.build_chain(rec))

    def train(config, extra):
        torch.manual_seed(0)
        model = Rec()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        chain_ = [*config.build_chain(model, opt), *extra] if extra else None
        guard = Guard(model, opt, config=config, chain=chain_)
        g = torch.Generator().manual_seed(1)
        for _ in range(15):
            x = torch.randn(16, 10, 2, generator=g)
            guard.backward(((model(x) - x.sum((1, 2))[:, None]) ** 2).mean(), batch_size=16)
            guard.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    row = train(GuardConfig(recurrent_level="off"), [LevelNormalize(only_up=mode == "fall")])
    assert torch.equal(train(on, None), row)
    assert not torch.equal(train(on, None), train(GuardConfig(recurrent_level="off"), None))


def test_default_guard_on_an_lstm_resumes_exactly_from_its_state_dict():
    from trainground.gradients import Guard, GuardConfig

    def make():
        torch.manual_seed(0)
        model = Rec()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, Guard(model, opt, config=GuardConfig())

    def steps(model, guard, g, n):
        for _ in range(n):
            x = torch.randn(16, 10, 2, generator=g)
            guard.backward(((model(x) - x.sum((1, 2))[:, None]) ** 2).mean(), batch_size=16)
            guard.step()

    model, opt, guard = make()
    assert any(isinstance(t, LevelNormalize) for t in guard.chain)  # the default on a recurrent model
    g = torch.Generator().manual_seed(1)
    steps(model, guard, g, 12)
    # deep copies: the state dicts hold the live tensors that the next steps update in place
    saved = copy.deepcopy((model.state_dict(), opt.state_dict(), guard.state_dict())) + (g.get_state(),)
    steps(model, guard, g, 8)
    model2, opt2, guard2 = make()
    model2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    guard2.load_state_dict(saved[2])
    g2 = torch.Generator()
    g2.set_state(saved[3])
    steps(model2, guard2, g2, 8)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
