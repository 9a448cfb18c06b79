import pytest
import torch
import torch.nn.functional as F

from trainground.errors import ConfigError
from trainground.losses import (
    WeightedCrossEntropy,
    smooth_labels,
    smoothed_cross_entropy,
    weighted_cross_entropy,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 5, generator=g) * 3, torch.randint(0, 5, (32,), generator=g)


def test_unit_weights_equal_cross_entropy(batch):
    logits, y = batch
    ref = F.cross_entropy(logits, y)
    assert torch.allclose(weighted_cross_entropy(logits, y), ref, atol=1e-6)
    assert torch.allclose(weighted_cross_entropy(logits, y, class_weight=torch.ones(5)), ref, atol=1e-6)
    assert torch.allclose(weighted_cross_entropy(logits, y, sample_weight=torch.ones(32)), ref, atol=1e-6)


def test_class_weights_equal_torch_weighted_cross_entropy(batch):
    logits, y = batch
    w = torch.tensor([0.5, 1.0, 2.0, 4.0, 0.1])
    for reduction in ("mean", "sum", "none"):
        ref = F.cross_entropy(logits, y, weight=w, reduction=reduction)
        got = weighted_cross_entropy(logits, y, class_weight=w, reduction=reduction)
        assert torch.allclose(got, ref, atol=1e-5)


def test_label_smoothing_equals_torch_and_the_soft_target_form(batch):
    logits, y = batch
    for eps in (0.0, 0.1, 0.3):
        ref = F.cross_entropy(logits, y, label_smoothing=eps)
        assert torch.allclose(weighted_cross_entropy(logits, y, label_smoothing=eps), ref, atol=1e-5)
        soft = smooth_labels(y, 5, eps)
        assert torch.allclose(soft.sum(1), torch.ones(32))
        by_soft = -(soft * F.log_softmax(logits, -1)).sum(1)
        assert torch.allclose(smoothed_cross_entropy(logits, y, eps), by_soft, atol=1e-5)


def test_integer_sample_weight_equals_repeating_the_sample(batch):
    logits, y = batch
    w = torch.ones(32)
    w[3] = 4.0
    repeated = torch.cat([torch.arange(32), torch.full((3,), 3)])
    cw = torch.tensor([1.0, 2.0, 1.0, 0.5, 3.0])
    got = weighted_cross_entropy(logits, y, class_weight=cw, sample_weight=w)
    ref = F.cross_entropy(logits[repeated], y[repeated], weight=cw)
    assert torch.allclose(got, ref, atol=1e-5)


def test_module_validates_and_moves_with_to(batch):
    logits, y = batch
    loss = WeightedCrossEntropy(torch.tensor([1.0, 1, 1, 1, 2]), label_smoothing=0.1)
    assert "class_weight" in dict(loss.named_buffers())
    assert loss(logits, y).ndim == 0
    with pytest.raises(ConfigError, match="label_smoothing"):
        WeightedCrossEntropy(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="class_weight"):
        WeightedCrossEntropy(torch.tensor([1.0, -1.0]))


def test_all_zero_weights_give_zero_not_nan(batch):
    logits, y = batch
    out = weighted_cross_entropy(logits, y, sample_weight=torch.zeros(32))
    assert out.item() == 0.0
