from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainground.errors import ConfigError
from trainground.gradients import Guard, GuardConfig, read_actions

PLAIN = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)  # no transform: exact maths only


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _data(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_accumulated_gradient_equals_the_full_batch_gradient_with_an_uneven_last_window():
    x, y = _data(15)
    sizes = [4, 4, 4, 3]  # K=3: one full window of 12 samples, then a short window of 3
    ref = _model()
    loss_fn = nn.CrossEntropyLoss()
    model = copy.deepcopy(ref)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    guard = Guard(model, opt, config=GuardConfig(accumulation=3, spike_z=None, percentile=None, zscore=None, trust_region=False))
    start, stepped = 0, []
    for n in sizes:
        xb, yb = x[start:start + n], y[start:start + n]
        guard.backward(loss_fn(model(xb), yb), batch_size=n)
        stepped.append(guard.step())
        start += n
    assert stepped == [False, False, True, False]
    assert guard.step(force=True)  # the short window closes at the end of the data
    # Reference: SGD lr 1 on the mean gradient of samples 0-11, then of samples 12-14.
    ref_opt = torch.optim.SGD(ref.parameters(), lr=1.0)
    for lo, hi in ((0, 12), (12, 15)):
        ref_opt.zero_grad()
        loss_fn(ref(x[lo:hi]), y[lo:hi]).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_user_zero_grad_to_none_does_not_break_the_guard():
    x, y = _data(8)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = Guard(model, opt, config=PLAIN)
    ref = copy.deepcopy(model)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
        guard.step()
        ref_opt.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        ref_opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), ref.parameters(), strict=True))


class FakeScaler:
    """GradScaler's protocol on CPU: multiplies the loss by 1024, unscale_ divides it back."""

    def __init__(self) -> None:
        self.unscaled = False

    def get_scale(self) -> float:
        return 1024.0

    def scale(self, loss):
        return loss * 1024.0

    def unscale_(self, optimizer) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad.div_(1024.0)
        self.unscaled = True

    def step(self, optimizer) -> None:
        optimizer.step()

    def update(self) -> None:
        pass

    def state_dict(self):
        return {}


def test_amp_unscales_before_any_transform_sees_the_gradient():
    x, y = _data(8)
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=PLAIN)
    guard.scaler = FakeScaler()
    ref = copy.deepcopy(model)
    nn.functional.cross_entropy(ref(x), y).backward()
    true_norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ref.parameters()]))
    seen = []
    guard.chain.transforms.append(type("Probe", (), {
        "__call__": lambda self, ctx: seen.append(ctx.norm.clone()),
        "state_dict": lambda self: {}, "load_state_dict": lambda self, s: None})())
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
    guard.step()
    assert guard.scaler.unscaled
    assert torch.isclose(seen[0], true_norm, rtol=1e-4)  # not 1024x


def test_bf16_autocast_on_cpu_trains():
    x, y = _data(16)
    model = _model()
    guard = Guard(model, torch.optim.Adam(model.parameters(), lr=1e-2), config=GuardConfig(amp="auto"))
    assert guard.amp_dtype == torch.bfloat16 and guard.scaler is None
    for _ in range(5):
        with guard.autocast():
            loss = nn.functional.cross_entropy(model(x), y)
        guard.backward(loss, batch_size=16)
        guard.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(ConfigError, match="fp16"):
        Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig(amp="fp16"))


def _train(guard, model, batches):
    for x, y in batches:
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=len(y))
        guard.step()


def test_a_spike_is_skipped_and_a_persistent_spike_rolls_back(tmp_path):
    x, y = _data(32)
    model = _model()
    config = GuardConfig(check_every=1, snapshot_every=5, rollback_after=3)
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), config=config,
                  actions=str(tmp_path / "actions.jsonl"))
    _train(guard, model, [(x, y)] * 20)
    before = [p.detach().clone() for p in model.parameters()]
    _train(guard, model, [(x * 1e3, (y + 1) % 3)])  # one poisoned batch
    assert guard.last_stats["skipped"].item() == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # weights untouched
    assert [a["action"] for a in guard.actions] == ["skip"]
    _train(guard, model, [(x, y)] * 10)
    snapshot_step = guard._snapshot_step
    snap = [v.clone() for v in guard._snapshot["model"].values()]
    _train(guard, model, [(x * 1e3, (y + 1) % 3)] * 3)  # a persistent spike
    actions = read_actions(tmp_path / "actions.jsonl")
    assert [a["action"] for a in actions][-1] == "rollback"
    assert actions[-1]["evidence"]["restored_step"] == snapshot_step
    assert all(key in actions[-1] for key in ("step", "action", "reason", "evidence"))
    assert all(torch.equal(a, b) for a, b in zip(snap, model.state_dict().values(), strict=True))


def test_a_nan_loss_step_is_skipped_and_training_continues():
    x, y = _data(16)
    model = _model()
    guard = Guard(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    _train(guard, model, [(x, y)] * 3)
    before = [p.detach().clone() for p in model.parameters()]
    guard.backward(nn.functional.cross_entropy(model(x), y) * float("nan"), batch_size=16)
    guard.step()
    assert guard.last_stats["skipped"].item() == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    _train(guard, model, [(x, y)] * 3)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(v).all() for s in guard.optimizer.state.values() for v in s.values() if v.numel() > 1)


def test_guard_state_round_trips_and_gives_the_same_trajectory():
    x, y = _data(32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)] * 4
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    guard = Guard(model, opt, config=GuardConfig(accumulation=2))
    _train(guard, model, batches[:7])  # stops mid-window: the window's gradient must be saved too
    state = copy.deepcopy((model.state_dict(), opt.state_dict(), guard.state_dict()))
    _train(guard, model, batches[7:])
    model2 = _model(5)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.3, momentum=0.9)
    model2.load_state_dict(state[0])
    opt2.load_state_dict(state[1])
    guard2 = Guard(model2, opt2, config=GuardConfig(accumulation=2))
    guard2.load_state_dict(state[2])
    _train(guard2, model2, batches[7:])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters(), strict=True))


class FakeTasks:
    """A multi-task handler: the combined gradient is the plain sum of the task losses' gradients."""

    def __init__(self) -> None:
        self.calls = []

    def backward(self, losses, *, grad_multiplier, loss_scale):
        self.calls.append((grad_multiplier, float(loss_scale)))
        (sum(losses.values()) * grad_multiplier * loss_scale).backward()


def test_task_losses_go_through_the_tasks_handler():
    x, y = _data(8)
    model, ref = _model(), _model()
    tasks = FakeTasks()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=PLAIN, tasks=tasks)
    out = model(x)
    guard.backward({"a": nn.functional.cross_entropy(out, y), "b": out.pow(2).mean()}, batch_size=8)
    guard.step()
    assert tasks.calls == [(8.0, 1.0)]
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    out = ref(x)
    (nn.functional.cross_entropy(out, y) + out.pow(2).mean()).backward()
    ref_opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), ref.parameters(), strict=True))
    plain = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ConfigError, match="no tasks"):
        plain.backward({"a": nn.functional.cross_entropy(model(x), y)}, batch_size=8)


def test_adaptive_accumulation_changes_k_and_logs_it():
    torch.manual_seed(0)
    x, y = _data(256)
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.05),
                  config=GuardConfig(adaptive_accumulation=True, max_accumulation=8, check_every=2))
    assert guard.k == 2
    for i in range(120):
        j = (i * 4) % 256
        guard.backward(nn.functional.cross_entropy(model(x[j:j + 4]), y[j:j + 4]), batch_size=4)
        guard.step()
    changes = [a for a in guard.actions if a["action"] == "accumulation"]
    assert changes and 2 <= guard.k <= 8
    assert all(a["evidence"]["from"] != a["evidence"]["to"] for a in changes)


def test_mixed_dtype_parameters_fall_back_to_per_tensor_gradients():
    x, y = _data(8)
    model = _model()
    model[2].double()  # a layer in float64: no single flat buffer is possible
    head = model[2]

    class Cast(nn.Module):
        def forward(self, h):
            return head(h.double()).float()

    net = nn.Sequential(model[0], model[1], Cast())
    guard = Guard(net, torch.optim.SGD(list(model.parameters()), lr=0.1))
    for _ in range(3):
        guard.backward(nn.functional.cross_entropy(net(x), y), batch_size=8)
        assert guard.step()
    assert guard._flat is None and all(torch.isfinite(p).all() for p in model.parameters())
