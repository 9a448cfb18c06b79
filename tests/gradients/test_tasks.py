import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainground.errors import ConfigError
from trainground.gradients.tasks import (
    TaskGradients,
    clip_per_task_,
    cosine_matrix,
    flatten,
    gradient_norm,
    pcgrad,
    task_gradients,
)


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.a = nn.Linear(16, 3)
        self.b = nn.Linear(16, 2)

    def forward(self, x):
        h = self.trunk(x)
        return {"a": self.a(h), "b": self.b(h)}


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = TwoHeads()
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(20, 6, generator=g)
    y = {"a": torch.randint(0, 3, (20,), generator=g), "b": torch.randint(0, 2, (20,), generator=g)}
    return model, x, y


def losses_of(model, x, y, scale_b: float = 1.0):
    out = model(x)
    return {"a": F.cross_entropy(out["a"], y["a"]), "b": scale_b * F.cross_entropy(out["b"], y["b"])}


def reference_grads(model, x, y, scale_b=1.0, factor=1.0):
    model.zero_grad()
    (sum(losses_of(model, x, y, scale_b).values()) * factor).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return grads


def test_without_options_it_equals_a_plain_backward_of_the_sum():
    model, x, y = make()
    ref = reference_grads(model, x, y)
    TaskGradients(model).backward(losses_of(model, x, y))
    for p, r in zip(model.parameters(), ref, strict=True):
        assert torch.allclose(p.grad, r, atol=1e-6)


def test_loss_scale_and_accumulated_micro_batches():
    # The Guard's contract: param.grad += combined * grad_multiplier * loss_scale, so two
    # micro-batches of 12 and 8 samples at scale 1024 leave scale * (12 g1 + 8 g2).
    model, x, y = make()
    y1, y2 = {k: v[:12] for k, v in y.items()}, {k: v[12:] for k, v in y.items()}
    g1, g2 = reference_grads(model, x[:12], y1), reference_grads(model, x[12:], y2)
    tasks = TaskGradients(model)
    tasks.backward(losses_of(model, x[:12], y1), grad_multiplier=12, loss_scale=1024.0)
    tasks.backward(losses_of(model, x[12:], y2), grad_multiplier=8, loss_scale=torch.tensor(1024.0))
    for p, a, b in zip(model.parameters(), g1, g2, strict=True):
        assert torch.allclose(p.grad / 1024.0, 12 * a + 8 * b, atol=1e-5)


def test_amp_grad_scaler_unscales_to_the_true_clipped_gradient():
    model, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    scaler.scale(torch.zeros(()))  # the scaler creates its scale tensor on first use, as in a Guard's first step
    tasks = TaskGradients(model, max_norm=0.05)
    tasks.backward(losses_of(model, x, y, scale_b=100.0), loss_scale=scaler.get_scale())
    scaler.unscale_(opt)
    # Per-task clipping happened at true scale: every task's contribution is within 0.05.
    unscaled = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    TaskGradients(model, max_norm=0.05).backward(losses_of(model, x, y, scale_b=100.0))
    for u, p in zip(unscaled, model.parameters(), strict=True):
        assert torch.allclose(u, p.grad, atol=1e-6)
    assert gradient_norm(unscaled).item() <= 2 * 0.05 + 1e-6


def test_per_task_clipping_bounds_each_task_contribution():
    model, x, y = make()
    max_norm = 0.1
    contributions = {}
    for task in ("a", "b"):
        model.zero_grad()
        out = losses_of(model, x, y, scale_b=100.0)
        TaskGradients(model, max_norm=max_norm).backward({task: out[task]})
        contributions[task] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    raw_b = task_gradients({"b": losses_of(model, x, y, scale_b=100.0)["b"]}, list(model.parameters()))["b"]
    assert gradient_norm(raw_b).item() > 10 * max_norm  # task b really is the loud one
    for task in ("a", "b"):
        assert gradient_norm(contributions[task]).item() <= max_norm * (1 + 1e-5)
    # Together: the combined gradient is exactly the sum of the two bounded contributions.
    model.zero_grad()
    tasks = TaskGradients(model, max_norm=max_norm)
    tasks.backward(losses_of(model, x, y, scale_b=100.0))
    for p, ca, cb in zip(model.parameters(), contributions["a"], contributions["b"], strict=True):
        assert torch.allclose(p.grad, ca + cb, atol=1e-6)
    stats = tasks.stats()
    assert stats["task_clip_scale/b"] < 0.1 and stats["task_grad_norm/b"] > stats["task_grad_norm/a"]


def test_clip_per_task_leaves_small_tasks_alone():
    grads = {"small": [torch.tensor([0.3, 0.4])], "big": [torch.tensor([30.0, 40.0]), None]}
    scales = clip_per_task_(grads, 1.0)
    assert torch.allclose(grads["small"][0], torch.tensor([0.3, 0.4]))
    assert gradient_norm(grads["big"]).item() == pytest.approx(1.0, rel=1e-5)
    assert scales[0].item() == 1.0


def test_pcgrad_projected_gradients_never_conflict():
    g = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(200):
        flat = torch.randn(2, 7, generator=g)
        conflicts += int(flat[0] @ flat[1] < 0)
        out = pcgrad(flat, generator=g)
        assert out[0] @ out[1] >= -1e-5
        assert out[0] @ flat[1] >= -1e-5 and out[1] @ flat[0] >= -1e-5
        if flat[0] @ flat[1] >= 0:
            assert torch.equal(out, flat)  # no conflict: nothing is projected
    assert conflicts > 50  # the property was exercised


def test_pcgrad_textbook_example():
    flat = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out = pcgrad(flat)
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))


def test_pcgrad_applies_to_shared_parameters_only():
    model, x, y = make()
    shared = list(model.trunk.parameters())
    tasks = TaskGradients(model, shared=model.trunk, pcgrad=True, seed=3)
    losses = losses_of(model, x, y)
    grads = task_gradients(losses, list(model.parameters()))
    tasks.backward(losses_of(model, x, y))
    positions = list(range(len(shared)))
    expected = pcgrad(flatten(grads, positions, list(model.parameters())), generator=torch.Generator().manual_seed(3)).sum(0)
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    assert torch.allclose(got, expected, atol=1e-6)
    # Heads are reached by one task each: untouched by PCGrad.
    assert torch.allclose(model.a.weight.grad, grads["a"][len(shared)], atol=1e-6)


def test_norms_and_cosines_are_logged_on_the_shared_parameters():
    model, x, y = make()
    out = model(x)
    la = F.cross_entropy(out["a"], y["a"])
    tasks = TaskGradients(model, shared=model.trunk)
    tasks.backward({"a": la, "same": 2 * la, "opposite": -la})
    stats = tasks.stats()
    ga = task_gradients({"a": F.cross_entropy(model(x)["a"], y["a"])}, list(model.trunk.parameters()))["a"]
    assert stats["task_grad_norm/a"] == pytest.approx(gradient_norm(ga).item(), rel=1e-5)
    assert stats["task_grad_norm/same"] == pytest.approx(2 * stats["task_grad_norm/a"], rel=1e-5)
    assert stats["task_grad_cos/a/same"] == pytest.approx(1.0, abs=1e-5)
    assert stats["task_grad_cos/a/opposite"] == pytest.approx(-1.0, abs=1e-5)
    assert cosine_matrix(torch.zeros(2, 3)).abs().sum().item() == 0.0


def test_per_group_clipping():
    model, x, y = make()
    tasks = TaskGradients(model, groups={"trunk": model.trunk, "heads": [*model.a.parameters(), *model.b.parameters()]},
                          group_max_norm={"trunk": 1e-3, "heads": 1e3})
    ref = reference_grads(model, x, y, scale_b=50.0)
    tasks.backward(losses_of(model, x, y, scale_b=50.0))
    assert gradient_norm([p.grad for p in model.trunk.parameters()]).item() == pytest.approx(1e-3, rel=1e-3)
    params = list(model.parameters())
    for p, r in zip(params[2:], ref[2:], strict=True):  # the heads' group is under its limit: unchanged
        assert torch.allclose(p.grad, r, atol=1e-5)
    assert tasks.stats()["group_grad_norm/trunk"] > 1e-3


def test_plain_loop_trains_and_autocast_losses_work():
    model, x, y = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tasks = TaskGradients(model, shared=model.trunk, max_norm=1.0, pcgrad=True)
    first = None
    for _ in range(30):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses = losses_of(model, x, y)
        tasks.backward(losses)
        opt.step()
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
    final = losses_of(model, x, y)
    assert all(final[k].item() < first[k] for k in first)
    state = tasks.state_dict()
    other = TaskGradients(model, pcgrad=True, seed=99)
    other.load_state_dict(state)
    assert torch.equal(torch.randperm(5, generator=other.generator), torch.randperm(5, generator=tasks.generator))


def test_configuration_errors():
    model, _, _ = make()
    with pytest.raises(ConfigError, match="group_max_norm"):
        TaskGradients(model, groups={"trunk": model.trunk})
    with pytest.raises(ConfigError, match="in groups"):
        TaskGradients(model, groups={"x": model.trunk, "y": model.trunk}, group_max_norm=1.0)
    with pytest.raises(ConfigError, match="shared parameter"):
        TaskGradients(model.a, shared=model.trunk)
    with pytest.raises(ConfigError, match="max_norm"):
        TaskGradients(model, max_norm=0.0)
    with pytest.raises(ConfigError, match="at least one"):
        TaskGradients(model).backward({})
