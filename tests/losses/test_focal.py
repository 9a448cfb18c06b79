import pytest
import torch
import torch.nn.functional as F

from trainground.errors import ConfigError
from trainground.losses import FocalLoss, focal_loss, weighted_cross_entropy


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 6, generator=g) * 2, torch.randint(0, 6, (40,), generator=g)


def test_gamma_zero_is_cross_entropy(batch):
    logits, y = batch
    assert torch.allclose(focal_loss(logits, y, gamma=0.0), F.cross_entropy(logits, y), atol=1e-6)
    alpha = torch.linspace(0.5, 2.0, 6)
    ref = F.cross_entropy(logits, y, weight=alpha)
    assert torch.allclose(focal_loss(logits, y, gamma=0.0, alpha=alpha), ref, atol=1e-5)


def test_matches_the_textbook_formula(batch):
    logits, y = batch
    alpha = torch.linspace(0.5, 2.0, 6)
    p = torch.softmax(logits.double(), -1).gather(1, y[:, None]).squeeze(1)
    per = -alpha.double()[y] * (1 - p) ** 2.0 * torch.log(p)
    got = focal_loss(logits, y, gamma=2.0, alpha=alpha, reduction="none")
    assert torch.allclose(got.double(), per, atol=1e-5)
    assert torch.allclose(focal_loss(logits, y, gamma=2.0, alpha=alpha), (per.sum() / alpha[y].sum()).float(), atol=1e-5)


def test_focusing_downweights_easy_samples():
    logits = torch.tensor([[8.0, 0.0], [0.2, 0.0]])  # one confident, one hard sample of class 0
    y = torch.tensor([0, 0])
    ce = weighted_cross_entropy(logits, y, reduction="none")
    fl = focal_loss(logits, y, gamma=2.0, reduction="none")
    assert (fl / ce)[0] < 1e-6 < (fl / ce)[1]


def test_gradient_is_finite_for_confident_predictions():
    logits = torch.tensor([[60.0, 0.0, 0.0]], requires_grad=True)
    focal_loss(logits, torch.tensor([0]), gamma=0.5).backward()
    assert torch.isfinite(logits.grad).all()


def test_module_options(batch):
    logits, y = batch
    assert torch.allclose(FocalLoss(0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    with pytest.raises(ConfigError, match="gamma"):
        FocalLoss(-1.0)
    with pytest.raises(ConfigError, match="alpha"):
        FocalLoss(alpha=torch.tensor([[1.0]]))
