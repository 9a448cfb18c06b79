"""The Guard with the real multi-task handler (the two were written against one contract)."""

import torch
from torch import nn

from trainground.gradients import Guard, GuardConfig, TaskGradients

# Nothing but the optimizer step: the handler's own work is what is compared.
BARE = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.a = nn.Linear(16, 3)
        self.b = nn.Linear(16, 2)

    def forward(self, x):
        h = self.trunk(x)
        return self.a(h), self.b(h)


def _losses(model, x, ya, yb, loud=1.0):
    out_a, out_b = model(x)
    return {"a": nn.functional.cross_entropy(out_a, ya), "b": loud * nn.functional.cross_entropy(out_b, yb)}


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)


def test_guard_with_unclipped_tasks_steps_like_the_summed_loss():
    torch.manual_seed(0)
    model = TwoHeads()
    reference = TwoHeads()
    reference.load_state_dict(model.state_dict())
    x, ya, yb = _data()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=BARE, tasks=TaskGradients(model))
    guard.backward(_losses(model, x, ya, yb), batch_size=len(x))
    guard.step()
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    sum(_losses(reference, x, ya, yb).values()).backward()
    ref_opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_guard_with_two_micro_batches_and_per_task_clip_bounds_the_loud_task():
    torch.manual_seed(0)
    model = TwoHeads()
    before = [p.detach().clone() for p in model.parameters()]
    tasks = TaskGradients(model, max_norm=0.5)
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=1.0),
                  config=GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False, accumulation=2), tasks=tasks)
    for seed, n in ((1, 12), (2, 8)):
        x, ya, yb = _data(n, seed)
        guard.backward(_losses(model, x, ya, yb, loud=100.0), batch_size=n)
        guard.step()
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    # Each micro-batch's combined gradient is at most 2 x 0.5 (two tasks, each clipped to 0.5);
    # the sample-weighted mean of two such windows cannot exceed it either.
    assert 0 < update.norm() <= 1.0 + 1e-5
    stats = tasks.stats()
    assert stats["task_grad_norm/b"] > 10 * stats["task_grad_norm/a"]
