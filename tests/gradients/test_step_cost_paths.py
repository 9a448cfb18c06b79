"""The host step's cheap paths (issue 17): cached 1-D update views; grad mode restored around the step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainground.gradients import Guard, GuardConfig, SecantTrustRegion, flat_buffer
from trainground.gradients.context import HostContext
from trainground.gradients.flat_buffer import FlatGradients


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def test_scratch_flat_views_alias_the_update_buffer_and_are_made_once():
    params = [p for p in _model().parameters()]
    buffers = FlatGradients(params)
    views = buffers.scratch_flat(params)
    assert views is buffers.scratch_flat(params)  # cached, not rebuilt per step
    assert [v.numel() for v in views] == [p.numel() for p in params] and all(v.dim() == 1 for v in views)
    buffers.old.copy_(torch.arange(buffers.numel, dtype=torch.float32))  # type: ignore[union-attr]
    assert torch.equal(torch.cat(views), buffers.old)  # views of the buffer, in parameter order
    # A parameter without a gradient (per-tensor layout) is left out, the others stay aligned.
    params[1].grad = None
    for p in params[:1] + params[2:]:
        p.grad = torch.zeros_like(p)
    subset = buffers.scratch_flat([p for p in params if p.grad is not None])
    assert [v.data_ptr() for v in subset] == [v.data_ptr() for i, v in enumerate(views) if i != 1]


def test_scratch_flat_follows_a_reallocated_flat_buffer():
    model = _model()
    params = list(model.parameters())
    buffers = FlatGradients(params)
    buffers.use(True)
    assert buffers.ensure()
    first = buffers.scratch_flat(params)
    for p in params:
        p.grad = None  # the user dropped the views: the buffers are made again
    assert buffers.ensure()
    second = buffers.scratch_flat(params)
    assert second is not first and second[0].data_ptr() == buffers.old.data_ptr()  # type: ignore[union-attr]


@pytest.mark.parametrize("flat", [True, False])
def test_the_per_tensor_dot_uses_the_cached_views(flat, monkeypatch):
    # flat=False: tensors count as large, so K = 1 keeps autograd's gradients and the secant's dot
    # products run tensor by tensor over the cached views; both layouts give the same secant.
    monkeypatch.setattr(flat_buffer, "SMALL_TENSOR", 1 << 16 if flat else 0)
    seen = []
    original = HostContext.dot

    def spy(ctx, update):
        seen.append(ctx.update_views)
        return original(ctx, update)

    monkeypatch.setattr(HostContext, "dot", spy)
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig())
    for seed in range(4):
        x, y = _batch(seed)
        guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
        guard.step()
    assert (guard._flat is not None) == flat and len(seen) == 7  # D on 4 steps, C on 3
    if flat:
        assert all(v is None for v in seen)
    else:
        assert all(v is guard.buffers.old_flat_views for v in seen)
    trust = next(t for t in guard.chain if isinstance(t, SecantTrustRegion))
    assert trust.descent != 0 and trust.curvature != 0


class _Failing(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("optimizer failed")


@pytest.mark.parametrize("enabled", [True, False])
def test_the_step_restores_grad_mode(enabled):
    model = _model()
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.1), config=GuardConfig())
    x, y = _batch()
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
    with torch.set_grad_enabled(enabled):
        guard.step()
        assert torch.is_grad_enabled() is enabled
    # An optimizer that raises inside the step leaves grad mode as it found it.
    model = _model()
    guard = Guard(model, _Failing(model.parameters(), lr=0.1), config=GuardConfig())
    guard.backward(nn.functional.cross_entropy(model(x), y), batch_size=8)
    with torch.set_grad_enabled(enabled):
        with pytest.raises(RuntimeError, match="optimizer failed"):
            guard.step()
        assert torch.is_grad_enabled() is enabled
