import torch
from torch import nn

from trainground.gradients import Guard, GuardConfig


def test_grad_scale_recovers_the_mean_gradient_of_an_open_window():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig(accumulation=2))
    guard.backward(nn.functional.cross_entropy(model(x[:12]), y[:12]), batch_size=12)
    guard.backward(nn.functional.cross_entropy(model(x[12:]), y[12:]), batch_size=8)
    seen = torch.cat([p.grad.flatten() for p in model.parameters()]) / guard.grad_scale
    expected = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), list(model.parameters()))
    torch.testing.assert_close(seen.float(), torch.cat([g.flatten() for g in expected]), rtol=1e-5, atol=1e-6)
