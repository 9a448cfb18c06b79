"""The envelope clip (issue 15, sixth pass candidate): the level follows the norm down at once and up slowly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trainground.gradients import chain
from trainground.gradients.context import HostContext
from trainground.gradients.envelope import EnvelopeClip


def _feed(clip: EnvelopeClip, norms: list[float], host: bool) -> list[float]:
    """Feed ``norms`` (one-tensor gradients of that norm); return the norm after the clip per step."""
    out = []
    for n in norms:
        if host:
            ctx = HostContext([], [], raw_norm=n, loss=1.0)
            clip.host(ctx)
            out.append(n * ctx.scale)
        else:
            out.append(float(chain(clip).apply_([torch.tensor([n])]).norm))
    return out


@pytest.mark.parametrize("host", [True, False])
def test_first_step_passes_and_the_level_follows_down_at_once(host):
    out = _feed(EnvelopeClip(), [0.8, 0.5, 0.9, 0.2, 0.3], host)
    r = 2 ** 0.1
    assert out[0] == pytest.approx(0.8)  # nothing seen yet: no clip
    assert out[1] == pytest.approx(0.5)  # below the level: passes, the level drops to it
    assert out[2] == pytest.approx(0.5 * r, rel=1e-5)  # above: held to the level's one-step rise
    assert out[3] == pytest.approx(0.2)
    assert out[4] == pytest.approx(0.2 * r, rel=1e-5)


@pytest.mark.parametrize("host", [True, False])
def test_a_lasting_rise_is_followed_at_most_twofold_per_ten_steps(host):
    norms = [0.1] * 20 + [1.0] * 60
    out = _feed(EnvelopeClip(), norms, host)
    assert out[20 + 9] == pytest.approx(0.1 * 2 ** 1.0, rel=1e-4)  # ten steps after the rise: 2x
    assert out[20 + 33] == pytest.approx(1.0)  # 0.1 * 2**3.4 > 1: the new level is reached
    assert all(b <= a * 2 ** 0.1 * (1 + 1e-5) for a, b in itertools.pairwise(out))


@pytest.mark.parametrize("host", [True, False])
def test_non_finite_norm_neither_clips_nor_moves_the_level(host):
    clip = EnvelopeClip()
    _feed(clip, [0.3], host)
    if host:
        ctx = HostContext([], [], raw_norm=math.inf, loss=1.0)
        clip.host(ctx)
        assert ctx.scale == 1.0
    else:
        chain(clip).apply_([torch.tensor([float("nan")])])
    assert float(torch.as_tensor(clip.state_dict()["level"])) == pytest.approx(0.3)


def test_host_and_tensor_paths_agree_and_state_round_trips():
    g = torch.Generator().manual_seed(0)
    norms = [float(0.2 * torch.exp(0.5 * torch.randn((), generator=g))) for _ in range(200)]
    a, b = EnvelopeClip(), EnvelopeClip()
    assert _feed(a, norms, True) == pytest.approx(_feed(b, norms, False), rel=1e-5)
    c = EnvelopeClip(rise=3.0, horizon=5)
    c.load_state_dict(a.state_dict())
    assert (c.rise, c.horizon) == (2.0, 10)
    assert _feed(c, [5.0], False)[0] == pytest.approx(float(a.state_dict()["level"]) * 2 ** 0.1, rel=1e-5)


def test_rejects_bad_options():
    with pytest.raises(ValueError):
        EnvelopeClip(rise=0.5)
    with pytest.raises(ValueError):
        EnvelopeClip(horizon=0)
