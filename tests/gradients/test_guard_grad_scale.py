import pytest
import torch
from torch import nn

from trainground.gradients import Guard, GuardConfig


@pytest.mark.parametrize("config", [GuardConfig(accumulation=2), GuardConfig(accumulation=1),
                                    GuardConfig(accumulation=1, trust_region=False)])
def test_grad_scale_recovers_the_mean_gradient(config):
    # accumulation=2: two micro-batches of an open window (flat buffer); accumulation=1: the
    # direct path (one micro-batch, gradients where autograd puts them), with and without the
    # trust region's flat buffer.
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=config)
    parts = ((x[:12], y[:12]), (x[12:], y[12:])) if config.accumulation == 2 else ((x, y),)
    for xb, yb in parts:
        guard.backward(nn.functional.cross_entropy(model(xb), yb), batch_size=len(yb))
    seen = torch.cat([p.grad.flatten() for p in model.parameters()]) / guard.grad_scale
    expected = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), list(model.parameters()))
    torch.testing.assert_close(seen.float(), torch.cat([g.flatten() for g in expected]), rtol=1e-5, atol=1e-6)
