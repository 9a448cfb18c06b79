import math

import pytest
import torch

from trainground.losses.regression import RegressionLoss, huber_loss, mse_loss
from trainground.metrics import RegressionMetrics, mean_absolute_error, r2_score


def test_losses_match_the_textbook_formulas():
    pred = torch.tensor([[0.0], [1.0], [5.0]])
    y = torch.tensor([0.5, 1.0, 1.0])
    assert mse_loss(pred, y).item() == pytest.approx((0.25 + 0 + 16) / 3)
    # Huber, delta 1: 0.5 * 0.25 for |r| = 0.5, 0 for 0, 1 * (4 - 0.5) for |r| = 4
    assert huber_loss(pred, y, delta=1.0).item() == pytest.approx((0.125 + 0 + 3.5) / 3)
    assert RegressionLoss("huber", reduction="none")(pred, y).tolist() == pytest.approx([0.125, 0, 3.5])


def test_huber_bounds_an_outliers_gradient():
    pred = torch.tensor([0.0, 100.0], requires_grad=True)
    huber_loss(pred, torch.zeros(2), delta=1.0, reduction="sum").backward()
    assert pred.grad.tolist() == pytest.approx([0.0, 1.0])


def test_metrics_by_hand_and_accumulated_equals_whole():
    pred, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 5.0])
    assert mean_absolute_error(pred, y).item() == pytest.approx(2 / 3)
    ss_tot = ((y - y.mean()) ** 2).sum().item()
    assert r2_score(pred, y).item() == pytest.approx(1 - 2 / ss_tot)
    assert r2_score(y, y).item() == 1.0 and r2_score(torch.full((3,), y.mean().item()), y).item() == pytest.approx(0)
    assert math.isnan(r2_score(y, torch.ones(3)).item())
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(100, generator=g), torch.randn(100, generator=g)
    m = RegressionMetrics()
    for i in range(0, 100, 30):
        m.update(p[i : i + 30], t[i : i + 30])
    out = m.compute()
    assert out["mae"] == pytest.approx(mean_absolute_error(p, t).item(), rel=1e-5)
    assert out["r2"] == pytest.approx(r2_score(p, t).item(), rel=1e-5)


def test_wrong_sizes_and_options_are_refused():
    from trainground.errors import ConfigError

    with pytest.raises(ConfigError, match="different numbers"):
        mse_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ConfigError, match="unknown regression loss"):
        RegressionLoss("l1")
