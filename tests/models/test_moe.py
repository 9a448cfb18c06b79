"""The sparse MoE layer: top-k routing, capacity and dropped tokens, the balance loss, gradients."""

from __future__ import annotations

import pytest
import torch

from trainground.models import MoE, moe_aux_loss


def _moe(**kw) -> MoE:
    torch.manual_seed(0)
    return MoE(8, num_experts=4, k=2, hidden=16, **kw)


def test_output_shape_and_leading_dimensions():
    moe = _moe()
    assert moe(torch.randn(3, 5, 8)).shape == (3, 5, 8)
    assert MoE(8, 3, num_experts=4, k=1)(torch.randn(7, 8)).shape == (7, 3)


def test_without_capacity_the_layer_is_the_gated_sum_of_its_top_k_experts():
    moe = _moe(capacity_factor=None, noisy_gating=False).eval()
    with torch.no_grad():
        moe.gate.weight.normal_()
    x = torch.randn(10, 8)
    logits = moe.gate(x)
    top, idx = logits.topk(2, dim=-1)
    w = top.softmax(-1)
    expected = torch.stack([
        sum(w[t, j] * moe.experts[int(idx[t, j])](x[t]) for j in range(2)) for t in range(10)
    ])
    assert torch.allclose(moe(x), expected, atol=1e-6)
    stats = moe.last_routing
    assert int(stats.tokens) == 10 and int(stats.assigned.sum()) == 20 and torch.equal(stats.assigned, stats.kept)


def test_capacity_drops_assignments_past_it():
    moe = _moe(capacity_factor=1.0, noisy_gating=False)
    with torch.no_grad():
        moe.gate.bias.copy_(torch.tensor([10.0, 9.0, 0.0, 0.0]))  # every token wants experts 0 and 1
    moe(torch.randn(40, 8))
    stats = moe.last_routing
    cap = moe.capacity(40)  # ceil(1.0 * 40 * 2 / 4) = 20
    assert cap == 20
    assert stats.assigned.tolist() == [40, 40, 0, 0] and stats.kept.tolist() == [20, 20, 0, 0]


def test_balance_loss_is_one_when_uniform_and_e_when_collapsed():
    moe = _moe(noisy_gating=False, balance_weight=1.0, capacity_factor=None)
    with torch.no_grad():
        moe.gate.weight.zero_()  # every gate probability 1/E: the loss is E * sum_i f_i / E = 1 whatever f
    moe(torch.randn(64, 8))
    assert float(moe.aux_loss.detach()) == pytest.approx(1.0, rel=1e-5)
    one = MoE(8, num_experts=4, k=1, noisy_gating=False, balance_weight=1.0)
    with torch.no_grad():
        one.gate.bias.copy_(torch.tensor([30.0, 0, 0, 0]))
    one(torch.randn(64, 8))
    assert float(one.aux_loss.detach()) == pytest.approx(4.0, rel=1e-4)


def test_gradients_reach_gate_and_chosen_experts_and_the_aux_loss_is_differentiable():
    moe = _moe()
    x = torch.randn(32, 8, requires_grad=True)
    (moe(x).square().mean() + moe_aux_loss(moe)).backward()
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0
    assert x.grad is not None and any(e[0].weight.grad is not None for e in moe.experts)


def test_noise_only_in_training_and_determinism_by_seed():
    moe = _moe()
    x = torch.randn(16, 8)
    moe.eval()
    assert torch.equal(moe(x), moe(x))
    moe.train()
    torch.manual_seed(1)
    a = moe(x)
    torch.manual_seed(1)
    assert torch.equal(a, moe(x))


def test_aux_loss_of_a_model_sums_its_moe_layers():
    model = torch.nn.Sequential(_moe(balance_weight=1.0), torch.nn.ReLU(), _moe(balance_weight=1.0))
    model(torch.randn(8, 8))
    assert torch.allclose(moe_aux_loss(model), model[0].aux_loss + model[2].aux_loss)
    assert float(moe_aux_loss(torch.nn.Linear(2, 2))) == 0.0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        MoE(4, num_experts=2, k=3)
    with pytest.raises(ValueError, match="capacity_factor"):
        MoE(4, capacity_factor=0.0)
