import math
import random

import torch

from trainground.gradients import SecantTrustRegion


def _factors(losses, *, tensor: bool, rho: float = 1.5):
    region = SecantTrustRegion(min_factor=0.1)
    out = []
    for loss in losses:
        if tensor:
            f = region._min_factor_tensor(torch.tensor(loss), torch.tensor(True), torch.tensor(rho))
            out.append(float(f))
        else:
            region._host_state()
            out.append(region._min_factor_host(loss, rho))
    return out


def test_gate_blocks_shrinking_while_the_loss_improves_and_allows_it_when_it_rises():
    falling = [2.0 * math.exp(-0.02 * t) + 0.01 * ((-1) ** t) for t in range(200)]
    rising = [1.0 + 0.02 * t for t in range(200)]
    for tensor in (False, True):
        assert all(abs(f - 1.02) < 1e-6 for f in _factors(falling, tensor=tensor)[5:])
        assert all(abs(f - 0.1) < 1e-7 for f in _factors(rising, tensor=tensor)[20:])  # a 2 %/step ramp: seen by step 20


def test_a_flat_noisy_loss_is_no_evidence_of_overshoot():
    # The plateau that stalled an LSTM under the first gate: flat loss, mini-batch noise, rho ~ 1.5.
    rng = random.Random(0)
    flat = [0.17 + 0.02 * rng.gauss(0, 1) for _ in range(1000)]
    for tensor in (False, True):
        factors = _factors(flat, tensor=tensor)[100:]
        shrinking = sum(f < 1 for f in factors) / len(factors)
        assert shrinking < 0.05  # the first gate shrank on about half of these steps
        assert math.prod(factors) > 1  # the scale recovers over the plateau


def test_an_uphill_step_is_evidence_whatever_the_loss_does():
    falling = [2.0 * math.exp(-0.02 * t) for t in range(50)]
    for tensor in (False, True):
        assert all(abs(f - 0.1) < 1e-7 for f in _factors(falling, tensor=tensor, rho=2.5))


def test_gate_host_and_tensor_paths_agree_and_ignore_nan():
    losses = [1.0, 0.9, float("nan"), 1.2, 1.3, 0.7, 0.6, 0.65, 0.9, 1.1]
    host, device = _factors(losses, tensor=False), _factors(losses, tensor=True)
    assert all(abs(a - b) < 1e-6 for a, b in zip(host, device, strict=True))
    assert host[2] == host[1]  # the NaN step changed nothing


def test_gate_off_always_allows_shrinking():
    region = SecantTrustRegion(min_factor=0.1, loss_gate=False)
    region._host_state()
    assert region._min_factor_host(0.5) == 0.1


def test_the_secant_stops_at_its_floor_but_keeps_a_rollback_cut():
    from trainground.gradients.secant import trust_scale_update, trust_scale_update_host

    for update in (trust_scale_update_host,
                   lambda s, r, **k: float(trust_scale_update(torch.tensor(s), torch.tensor(r), **k))):
        kw = {"target": 1.0, "grow": 1.02, "min_factor": 0.1, "min_scale": 0.01}
        assert abs(update(0.02, 10.0, **kw) - 0.01) < 1e-7  # shrinking stops at the floor
        assert abs(update(0.001, 10.0, **kw) - 0.001) < 1e-7  # below it (a rollback): held
        assert abs(update(0.001, 0.5, **kw) - 0.00102) < 1e-7  # and it may grow
        assert update(1.0, 0.5, **kw) == 1.0
