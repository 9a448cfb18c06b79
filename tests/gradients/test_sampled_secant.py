"""The sampled secant (issue 17): the trust region's passes read one parameter element in
``GuardConfig.trust_sample`` where they are memory-bound (CPU, per-tensor layout, >= 2**18 parameters)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainground.gradients import Guard, GuardConfig, SecantTrustRegion, flat_buffer
from trainground.gradients.flat_buffer import FlatGradients
from trainground.gradients.sampled import SAMPLE_BLOCK, sample_view


def _model(seed: int = 0, width: int = 24) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(400, width), nn.ReLU(), nn.Linear(width, 3))


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 400, generator=g), torch.randint(0, 3, (16,), generator=g)


def _trust(guard: Guard) -> SecantTrustRegion:
    return next(t for t in guard.chain if isinstance(t, SecantTrustRegion))


def test_sample_view_is_a_view_of_about_one_element_in_stride():
    big = torch.zeros(SAMPLE_BLOCK * 40 + 7)
    view = sample_view(big, 8)
    assert view.numel() == SAMPLE_BLOCK * 5  # blocks 0, 8, ..., 32; the partial block left out
    view.fill_(1.0)
    marked = big[: SAMPLE_BLOCK * 40].view(40, SAMPLE_BLOCK)[:, 0]
    assert marked.nonzero().flatten().tolist() == [0, 8, 16, 24, 32]  # it aliases the tensor
    small = torch.zeros(100)
    sample_view(small, 8).fill_(1.0)  # too small for 8 blocks: every 8th element
    assert small.nonzero().flatten().tolist() == list(range(0, 100, 8))


def test_the_default_samples_and_trust_sample_1_reads_every_element(monkeypatch):
    model = _model()
    default = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig())
    assert GuardConfig().trust_sample == 8 and _trust(default).sample == 8
    guard, _ = _run(1, 3, monkeypatch)
    assert guard.buffers._sampled is None and _trust(guard).neg_update is guard.buffers.old


def test_sampling_applies_only_to_large_per_tensor_layouts(monkeypatch):
    trust = SecantTrustRegion(sample=8)
    params = list(_model().parameters())  # ~10k parameters: below SAMPLE_MIN_NUMEL
    assert FlatGradients(params).sample_stride([trust]) == 1
    monkeypatch.setattr(flat_buffer, "SAMPLE_MIN_NUMEL", 0)
    buffers = FlatGradients(params)
    assert buffers.sample_stride([trust]) == 8 and buffers.sample_stride([SecantTrustRegion()]) == 1
    buffers.use(True)
    buffers.ensure()  # a flat gradient buffer: its dot products are one kernel, nothing sampled
    assert buffers.sample_stride([trust]) == 1
    weird = [nn.Parameter(torch.zeros(8, 6).t())]  # not contiguous: a sampled view would be a copy
    assert FlatGradients(weird).sample_stride([trust]) == 1


def _run(sample: int, steps: int, monkeypatch, lr: float = 0.5) -> tuple[Guard, list[float]]:
    monkeypatch.setattr(flat_buffer, "SAMPLE_MIN_NUMEL", 0)  # the test's model stands for a large one
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 0)  # ... with large tensors: no flat buffer
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=lr), config=GuardConfig(trust_sample=sample))
    losses = []
    for seed in range(steps):
        x, y = _batch(seed)
        loss = nn.functional.cross_entropy(model(x), y)
        guard.backward(loss, batch_size=16)
        guard.step()
        losses.append(float(loss.detach()))
    return guard, losses


def test_the_sampled_update_is_the_applied_update_on_the_sampled_elements(monkeypatch):
    guard, _ = _run(8, 1, monkeypatch)
    assert guard._flat is None and guard.buffers.old is None  # no whole update buffer is even made
    trust = _trust(guard)
    layouts = guard.buffers._sampled[1]
    assert trust.sample == 8 and len(layouts) == 8 and trust.neg_update is layouts[0].update
    assert layouts[0].update.numel() < guard.buffers.numel / 4
    # One more step by hand to see the weights before and after it: the second measured step reads phase 1.
    before = [p.detach().clone() for p in guard.model.parameters()]
    x, y = _batch(99)
    guard.backward(nn.functional.cross_entropy(guard.model(x), y), batch_size=16)
    grads = [p.grad.clone() for p in guard.model.parameters()]
    guard.step()
    after = [p.detach() for p in guard.model.parameters()]
    assert trust.neg_update is layouts[1].update
    kept = torch.cat([sample_view(b - a, 8, 1).reshape(-1) for b, a in zip(before, after, strict=True)])
    assert torch.equal(layouts[1].update, kept)  # -u, exactly, on the sampled elements, in parameter order
    # D of that step: the raw gradient's dot with -u over the same elements only (no clip fired).
    expected = float(torch.dot(torch.cat([sample_view(g, 8, 1).reshape(-1) for g in grads]), kept))
    assert guard.last_stats["update_scale"] > 0
    assert abs(trust.last_descent - expected) <= 1e-5 * abs(expected)


def test_the_phases_cover_every_element_once():
    t = torch.zeros(SAMPLE_BLOCK * 20 + 5)
    for phase in range(8):
        sample_view(t, 8, phase).add_(1.0)
    assert torch.equal(t[: SAMPLE_BLOCK * 20], torch.ones(SAMPLE_BLOCK * 20))  # the partial block: never
    small = torch.zeros(77)
    for phase in range(8):
        sample_view(small, 8, phase).add_(1.0)
    assert torch.equal(small, torch.ones(77))


def test_a_parameter_without_a_gradient_counts_zero_in_the_sampled_secant(monkeypatch):
    monkeypatch.setattr(flat_buffer, "SAMPLE_MIN_NUMEL", 0)
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 0)
    torch.manual_seed(0)
    used, unused = nn.Linear(400, 24), nn.Linear(400, 24)
    model = nn.ModuleList([used, unused])
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig(trust_sample=8))
    for seed in range(3):
        x, _ = _batch(seed)
        guard.backward(used(x).pow(2).mean(), batch_size=16)  # `unused` gets no gradient
        guard.step()
    layout = guard.buffers._sampled[1][2]  # the third measured step's phase
    assert _trust(guard).neg_update is layout.update
    n_used = sum(v.numel() for v in layout.update_views[:2])
    assert layout.update[n_used:].abs().sum() == 0 and layout.update[:n_used].abs().sum() > 0
    assert torch.isfinite(torch.as_tensor(_trust(guard).rho))


def test_a_switch_of_layout_drops_the_secant_direction_instead_of_failing(monkeypatch):
    guard, _ = _run(8, 3, monkeypatch)
    trust = _trust(guard)
    assert trust.neg_update is not None and trust.neg_update.numel() < guard.buffers.numel
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 1 << 16)  # the Guard now keeps a flat buffer
    guard._flat_key = None
    x, y = _batch(7)
    guard.backward(nn.functional.cross_entropy(guard.model(x), y), batch_size=16)
    guard.step()
    assert guard._flat is not None and trust.neg_update.numel() == guard.buffers.numel


def test_sampled_and_whole_secants_agree_on_the_ratio(monkeypatch):
    # The sample estimates 1/8 of C and of D; their ratio rho, which the trust region reads, stays
    # close to the whole one (the same weights: the scale is 1 until rho passes the target).
    whole, _ = _run(1, 30, monkeypatch, lr=0.05)
    sampled, _ = _run(8, 30, monkeypatch, lr=0.05)
    a, b = _trust(whole), _trust(sampled)
    assert 0.05 < a.rho < 2 and abs(b.rho - a.rho) < 0.25 * abs(a.rho)
    assert abs(b.descent) < 0.5 * abs(a.descent)  # it summed about 1/8 of the elements


def test_a_sampled_run_resumes_as_an_uninterrupted_one(monkeypatch):
    guard, _ = _run(8, 6, monkeypatch)
    state = _trust(guard).state_dict()
    assert state["sample"] == 8
    fresh = SecantTrustRegion()
    fresh.load_state_dict(state)
    assert fresh.sample == 8 and torch.equal(fresh.neg_update, state["neg_update"])
    legacy = {k: v for k, v in state.items() if k != "sample"}
    fresh.load_state_dict(legacy)
    assert fresh.sample == 1  # a checkpoint from before sampling read every element


def test_sampling_keeps_a_large_lr_run_alive(monkeypatch):
    # The trust region's job, sampled: SGD at a learning rate that diverges without it.
    _, losses = _run(8, 60, monkeypatch, lr=3.0)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_a_sampled_guard_resumes_on_the_same_trajectory(monkeypatch):
    monkeypatch.setattr(flat_buffer, "SAMPLE_MIN_NUMEL", 0)
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 0)
    config = GuardConfig(trust_sample=8)

    def make(seed_weights: int):
        model = _model(seed_weights)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        return model, opt, Guard(model, opt, config=config)

    def train(model, guard, seeds):
        for seed in seeds:
            x, y = _batch(seed)
            guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=16)
            guard.step()

    model, opt, guard = make(0)
    train(model, guard, range(5))
    state = copy.deepcopy((model.state_dict(), opt.state_dict(), guard.state_dict()))
    train(model, guard, range(5, 10))
    model2, opt2, guard2 = make(3)
    model2.load_state_dict(state[0])
    opt2.load_state_dict(state[1])
    guard2.load_state_dict(state[2])
    train(model2, guard2, range(5, 10))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters(), strict=True))
    assert _trust(guard2).neg_update is guard2.buffers._sampled[1][9 % 8].update  # the saved update was adopted
