import pytest
import torch
import torch.nn.functional as F

from trainground.errors import ConfigError
from trainground.losses import FocalLoss, MultiTaskLoss, UncertaintyWeighting


@pytest.fixture
def outputs():
    g = torch.Generator().manual_seed(3)
    return ({"fault": torch.randn(16, 12, generator=g), "severity": torch.randn(16, 5, generator=g)},
            {"fault": torch.randint(0, 12, (16,), generator=g), "severity": torch.randint(0, 5, (16,), generator=g)})


def test_static_sum_of_cross_entropies(outputs):
    out, y = outputs
    loss = MultiTaskLoss(["fault", "severity"], weighting="static", weights={"severity": 0.5})
    expected = F.cross_entropy(out["fault"], y["fault"]) + 0.5 * F.cross_entropy(out["severity"], y["severity"])
    assert torch.allclose(loss(out, y), expected)
    stacked = torch.stack([y["fault"], y["severity"]], 1)
    assert torch.allclose(loss(out, stacked), expected)
    assert loss.weights().tolist() == [1.0, 0.5]


def test_custom_task_losses_and_uncertainty(outputs):
    out, y = outputs
    loss = MultiTaskLoss({"fault": FocalLoss(2.0), "severity": None}, weighting="uncertainty", init=0.0)
    assert isinstance(loss.weighting, UncertaintyWeighting)
    assert [n for n, _ in loss.named_parameters()] == ["weighting.log_vars"]
    parts = loss.losses(out, y)
    assert torch.allclose(parts["fault"], FocalLoss(2.0)(out["fault"], y["fault"]))
    loss.end_epoch()  # a no-op for uncertainty weighting


def test_errors(outputs):
    out, y = outputs
    loss = MultiTaskLoss(["fault", "severity"])
    with pytest.raises(ConfigError, match="no output for tasks"):
        loss({"fault": out["fault"]}, y)
    with pytest.raises(ConfigError, match=r"\[N, 2\]"):
        loss(out, y["fault"])
    with pytest.raises(ConfigError, match="at least one task"):
        MultiTaskLoss([])


def test_dwa_through_the_multitask_loss(outputs):
    out, y = outputs
    loss = MultiTaskLoss(["fault", "severity"], weighting="dwa", temperature=2.0)
    for _ in range(3):
        loss(out, y)
        loss.end_epoch()
    assert loss.weights().sum().item() == pytest.approx(2.0)
