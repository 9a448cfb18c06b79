import math
import random

import torch

from trainground.gradients import SecantTrustRegion


def _gates(losses, *, tensor: bool, scale: float = 1.0):
    """(min_factor, floor) per loss, the scale held at ``scale``."""
    region = SecantTrustRegion(min_factor=0.1)
    out = []
    for loss in losses:
        if tensor:
            region.scale = torch.tensor(scale)
            f, floor = region._gate_tensor(torch.tensor(loss), torch.tensor(True))
            out.append((float(f), float(floor)))
        else:
            region._host_state()
            region.scale = scale
            out.append(region._gate_host(loss))
    return out


def test_gate_blocks_shrinking_while_the_loss_improves_and_allows_it_when_it_rises():
    falling = [2.0 * math.exp(-0.02 * t) + 0.01 * ((-1) ** t) for t in range(200)]
    rising = [1.0 + 0.02 * t for t in range(200)]
    for tensor in (False, True):
        assert all(f == 1.0 for f, _ in _gates(falling, tensor=tensor)[20:100])
        # a 2 %/step ramp is told from noise by step 20; then the secant may shrink to the floor
        assert all(abs(f - 0.1) < 1e-7 and abs(floor - 0.01) < 1e-7 for f, floor in _gates(rising, tensor=tensor)[20:])


def test_a_flat_noisy_loss_costs_at_most_a_decade_then_the_scale_recovers():
    # The plateau that stalled an LSTM under the first gate: a flat loss with mini-batch noise,
    # and a secant that says "overshoot" on every step (rho = 1.5): the worst case for the gate.
    from trainground.gradients.secant import trust_scale_update_host

    rng = random.Random(0)
    region = SecantTrustRegion(min_factor=0.1)
    region._host_state()
    scales = []
    for _ in range(1000):
        min_factor, floor = region._gate_host(0.17 + 0.02 * rng.gauss(0, 1))
        region.scale = trust_scale_update_host(region.scale, 1.5, target=1.0, grow=1.02, min_factor=min_factor,
                                               min_scale=floor)
        scales.append(region.scale)
    assert sum(s >= 0.5 for s in scales) > 0.5 * len(scales)  # mostly near the optimizer's own step
    assert scales[-1] > 0.5


def test_gate_host_and_tensor_paths_agree_and_ignore_nan():
    losses = [1.0, 0.9, float("nan"), 1.2, 1.3, 0.7, 0.6, 0.65, 0.9, 1.1, 1.0, 0.2, 0.1, 0.1]
    host, device = _gates(losses, tensor=False, scale=0.3), _gates(losses, tensor=True, scale=0.3)
    assert all(abs(a - b) < 1e-6 for x, y in zip(host, device, strict=True) for a, b in zip(x, y, strict=True))
    assert host[2] == host[1]  # the NaN step changed nothing


def test_gate_off_always_allows_shrinking():
    region = SecantTrustRegion(min_factor=0.1, loss_gate=False)
    region._host_state()
    assert region._gate_host(0.5) == (0.1, region.min_scale)


def test_the_secant_stops_at_its_floor_but_keeps_a_rollback_cut():
    from trainground.gradients.secant import trust_scale_update, trust_scale_update_host

    for update in (trust_scale_update_host,
                   lambda s, r, **k: float(trust_scale_update(torch.tensor(s), torch.tensor(r), **k))):
        kw = {"target": 1.0, "grow": 1.02, "min_factor": 0.1, "min_scale": 0.01}
        assert abs(update(0.02, 10.0, **kw) - 0.01) < 1e-7  # shrinking stops at the floor
        assert abs(update(0.001, 10.0, **kw) - 0.001) < 1e-7  # below it (a rollback): held
        assert abs(update(0.001, 0.5, **kw) - 0.00102) < 1e-7  # and it may grow
        assert update(1.0, 0.5, **kw) == 1.0


def test_an_improvement_never_lowers_the_flat_budget_reference():
    # Principle 6: re-armed at the current scale on every improvement, the one-decade budget of
    # a flat loss ratcheted a slowly improving run down to the floor; only a rollback lowers it.
    falling = [2.0 * math.exp(-0.02 * t) for t in range(100)]
    for tensor in (False, True):
        region = SecantTrustRegion(min_factor=0.1)
        for scale in (1.0, 0.2):  # improving at full scale, then again after a shrink
            for loss in falling:
                if tensor:
                    region.scale = torch.tensor(scale)
                    region._gate_tensor(torch.tensor(loss), torch.tensor(True))
                else:
                    region._host_state()
                    region.scale = scale
                    region._gate_host(loss)
        assert abs(float(region.flat_ref) - 1.0) < 1e-7, tensor
        region.set_scale(torch.tensor(0.05))  # a rollback's cut is hard evidence: it lowers it
        assert abs(float(region.flat_ref) - 0.05) < 1e-7, tensor


def test_a_short_burst_of_overshoot_on_a_plateau_is_not_significant_over_the_flat_horizon():
    # Principle 7: the flat-loss overshoot test runs at the long loss horizon (~100 steps). A burst
    # of five overshooting steps inside noise passes a ~10-step test but not the long one; a
    # persistent overshoot (a bouncing step) passes the long one.
    rng = random.Random(0)
    noise = [rng.gauss(0, 1) for _ in range(300)]
    burst = noise[:200] + [4.0] * 5
    persistent = [x + 0.5 for x in noise]
    for excesses, expect_short, expect_long in ((burst, True, False), (persistent, None, True)):
        short, long = SecantTrustRegion(), SecantTrustRegion()
        short._host_state(), long._host_state()
        for e in excesses:  # C - target * D = e with D = 1, target = 1
            s = short._overshoot_host(1.0 + e, 1.0, short.beta)
            lg = long._overshoot_host(1.0 + e, 1.0, long._slow)
        assert lg is expect_long
        if expect_short is not None:
            assert s is expect_short


def test_with_a_sparse_secant_the_loss_averages_keep_their_horizons_in_steps():
    # every = 2 feeds the gate every 2nd loss; the decays per measurement are FAST**2 and SLOW**2,
    # so after a level shift both averages get halfway in the same number of steps as with every = 1
    # (with the per-step decays they would take twice as many).
    losses = [1.0] * 300 + [2.0] * 500
    halfway = {}
    for every in (1, 2):
        region = SecantTrustRegion(every=every)
        region._host_state()
        for t in range(0, len(losses), every):
            region._update_loss_averages(losses[t])
            for name in ("fast", "slow"):
                mean = getattr(region, f"loss_{name}") / getattr(region, f"loss_weight_{name}")
                if t >= 300 and mean > 1.5 and (every, name) not in halfway:
                    halfway[every, name] = t - 300
    assert abs(halfway[1, "fast"] - halfway[2, "fast"]) <= 2
    assert abs(halfway[1, "slow"] - halfway[2, "slow"]) <= 2


def test_with_rise_overshoot_a_rising_loss_shrinks_only_with_a_significant_overshoot():
    # Principle 8 (issue 15): a rising loss is evidence only with an overshoot significant over the
    # long horizon; without one the scale recovers (grow, floor min_scale), on both paths.
    rising = [1.0 + 0.02 * t for t in range(60)]
    for overshoot, expect in ((False, 1.02), (True, 0.1)):
        for tensor in (False, True):
            region = SecantTrustRegion(min_factor=0.1, rise_overshoot=True)
            if not tensor:
                region._host_state()
            gates = []
            for loss in rising:
                if tensor:
                    f, floor = region._gate_tensor(torch.tensor(loss), torch.tensor(True), torch.tensor(overshoot))
                else:
                    f, floor = region._gate_host(loss, overshoot)
                gates.append((float(f), float(floor)))
            assert all(abs(f - expect) < 1e-6 and abs(floor - 0.01) < 1e-7 for f, floor in gates[20:])
    # A loss that doubled is a divergence: evidence without the significance, on both paths.
    jump = [1.0] * 100 + [10.0] * 10  # the short EMA ~3.7x the long one after 10 steps
    for tensor in (False, True):
        region = SecantTrustRegion(min_factor=0.1, rise_overshoot=True)
        if not tensor:
            region._host_state()
        for loss in jump:
            if tensor:
                f, _ = region._gate_tensor(torch.tensor(loss), torch.tensor(True), torch.tensor(False))
            else:
                f, _ = region._gate_host(loss, False)
        assert abs(float(f) - 0.1) < 1e-6
    # Off (the default): a rising loss shrinks without the significance, as before.
    region = SecantTrustRegion(min_factor=0.1)
    region._host_state()
    assert [region._gate_host(loss, False) for loss in rising][-1] == (0.1, 0.01)


def test_rise_overshoot_round_trips_through_the_state_dict():
    region = SecantTrustRegion(rise_overshoot=True)
    clone = SecantTrustRegion()
    clone.load_state_dict(region.state_dict())
    assert clone.rise_overshoot is True
    old = {k: v for k, v in region.state_dict().items() if k != "rise_overshoot"}  # a checkpoint from before
    clone.load_state_dict(old)
    assert clone.rise_overshoot is False
