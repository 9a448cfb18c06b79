import math

import torch

from trainground.gradients import SecantTrustRegion


def _factors(losses, *, tensor: bool):
    region = SecantTrustRegion(min_factor=0.1)
    out = []
    for loss in losses:
        if tensor:
            f = region._min_factor_tensor(torch.tensor(loss), torch.tensor(True))
            out.append(float(f))
        else:
            region._host_state()
            out.append(region._min_factor_host(loss))
    return out


def test_gate_blocks_shrinking_while_the_loss_improves_and_allows_it_when_it_rises():
    falling = [2.0 * math.exp(-0.02 * t) + 0.01 * ((-1) ** t) for t in range(200)]
    rising = [1.0 + 0.02 * t for t in range(200)]
    for tensor in (False, True):
        assert all(f == 1.0 for f in _factors(falling, tensor=tensor)[5:])
        assert all(abs(f - 0.1) < 1e-7 for f in _factors(rising, tensor=tensor)[5:])


def test_gate_host_and_tensor_paths_agree_and_ignore_nan():
    losses = [1.0, 0.9, float("nan"), 1.2, 1.3, 0.7, 0.6, 0.65, 0.9, 1.1]
    host, device = _factors(losses, tensor=False), _factors(losses, tensor=True)
    assert all(abs(a - b) < 1e-6 for a, b in zip(host, device, strict=True))
    assert host[2] == host[1]  # the NaN step changed nothing


def test_gate_off_always_allows_shrinking():
    region = SecantTrustRegion(min_factor=0.1, loss_gate=False)
    region._host_state()
    assert region._min_factor_host(0.5) == 0.1
