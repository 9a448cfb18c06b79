import pytest
import torch
import torch.nn.functional as F

from trainground.errors import ConfigError
from trainground.losses import (
    GeneralizedCrossEntropy,
    SampleWeights,
    generalized_cross_entropy,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 5, generator=g) * 3, torch.randint(0, 5, (32,), generator=g)


def test_small_q_tends_to_cross_entropy_and_q_one_is_mean_absolute_error(batch):
    logits, y = batch
    assert torch.allclose(generalized_cross_entropy(logits, y, q=1e-4), F.cross_entropy(logits, y), rtol=2e-3)
    p_y = torch.softmax(logits, 1)[torch.arange(32), y]
    assert torch.allclose(generalized_cross_entropy(logits, y, q=1.0), (1 - p_y).mean(), atol=1e-6)


def test_loss_is_bounded_by_one_over_q_however_wrong_the_model():
    logits = torch.tensor([[100.0, -100.0, 0.0]])
    loss = generalized_cross_entropy(logits, torch.tensor([1]), q=0.7)
    assert float(loss) == pytest.approx(1 / 0.7, abs=1e-5)
    assert float(F.cross_entropy(logits, torch.tensor([1]))) > 100


def test_gradient_is_cross_entropy_gradient_scaled_by_p_y_to_the_q(batch):
    logits, y = batch
    q = 0.7
    a = logits.clone().requires_grad_(True)
    generalized_cross_entropy(a, y, q=q, reduction="sum").backward()
    b = logits.clone().requires_grad_(True)
    F.cross_entropy(b, y, reduction="none").sum().backward()
    p_y = torch.softmax(logits, 1)[torch.arange(32), y]
    assert torch.allclose(a.grad, b.grad * p_y.pow(q).unsqueeze(1), atol=1e-5)


def test_weights_count_a_sample_w_times(batch):
    logits, y = batch
    w = torch.ones(32)
    w[0] = 3.0
    repeated = generalized_cross_entropy(torch.cat([logits, logits[:1], logits[:1]]), torch.cat([y, y[:1], y[:1]]))
    assert torch.allclose(generalized_cross_entropy(logits, y, sample_weight=w), repeated, atol=1e-6)
    cw = torch.tensor([0.5, 1.0, 2.0, 4.0, 0.1])
    per = generalized_cross_entropy(logits, y, reduction="none")
    assert torch.allclose(generalized_cross_entropy(logits, y, class_weight=cw), (per * cw[y]).sum() / cw[y].sum(),
                          atol=1e-6)


def test_module_looks_up_sample_weights_by_input_index(batch):
    logits, y = batch
    index = torch.arange(100, 132)
    weights = SampleWeights(torch.arange(100, 132), torch.linspace(0.1, 2.0, 32))
    loss = GeneralizedCrossEntropy(0.5, sample_weights=weights)
    expected = generalized_cross_entropy(logits, y, q=0.5, sample_weight=torch.linspace(0.1, 2.0, 32))
    assert torch.allclose(loss.indexed_loss(logits, y, index), expected, atol=1e-6)
    assert torch.allclose(loss(logits, y), generalized_cross_entropy(logits, y, q=0.5), atol=1e-6)


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5])
def test_q_outside_zero_one_is_refused(batch, q):
    logits, y = batch
    with pytest.raises(ConfigError, match="q in"):
        generalized_cross_entropy(logits, y, q=q)
    with pytest.raises(ConfigError, match="q in"):
        GeneralizedCrossEntropy(q)
