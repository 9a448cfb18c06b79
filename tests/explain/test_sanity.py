"""Sanity checks that make the attributions trustworthy (not just plausible-looking).

- A known cause ranks first: on a table whose label is decided by one feature only, every
  method ranks that feature first.
- Model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018):
  attributions of a trained model and of the same architecture with random weights differ.
- Deletion curve (Samek et al. 2017; Petsiuk et al. 2018): replacing the top-attributed
  features by the baseline first destroys accuracy faster than replacing random features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from trainground.explain import METHODS, attribute
from trainground.models.mlp import MLP


def _train(x: torch.Tensor, y: torch.Tensor, classes: int, seed: int = 0, steps: int = 300) -> MLP:
    torch.manual_seed(seed)
    model = MLP(x.shape[1], classes, hidden=(32, 32))
    model.fit_input_stats(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _one_cause(n: int = 400, features: int = 8, cause: int = 5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, features, generator=g)
    y = (x[:, cause] > 0).long()  # only feature `cause` decides the label
    return x, y, cause


@pytest.mark.parametrize("method", METHODS)
def test_the_only_deciding_feature_ranks_first(method):
    x, y, cause = _one_cause()
    model = _train(x, y, 2)
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    rows = x[:20]
    a = attribute(model, rows, model(rows).argmax(1), method=method, baseline=x.mean(0), samples=200)
    importance = a.abs().mean(0)
    assert int(importance.argmax()) == cause, importance
    # and by a margin: the cause carries more than the other seven features together
    assert importance[cause] > importance.sum() - importance[cause]


def test_model_randomisation_changes_the_attributions():
    x, y, _ = _one_cause()
    trained = _train(x, y, 2)
    random = MLP(x.shape[1], 2, hidden=(32, 32))
    random.fit_input_stats(x)
    torch.manual_seed(123)
    for module in random.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    rows, target = x[:60], torch.ones(60, dtype=torch.long)
    a = attribute(trained, rows, target, baseline=x.mean(0))
    again = attribute(trained, rows, target, baseline=x.mean(0))
    b = attribute(random, rows, target, baseline=x.mean(0))
    assert torch.allclose(a, again)  # deterministic: a difference below is the weights', not noise
    rho = spearmanr(a.abs().mean(0).numpy(), b.abs().mean(0).numpy())[0]
    per_sample = np.mean([spearmanr(a[i].abs().numpy(), b[i].abs().numpy())[0] for i in range(len(rows))])
    assert rho < 0.5 and per_sample < 0.5, (rho, per_sample)


def _accuracy_when_deleting(model, x, y, order: torch.Tensor, baseline: torch.Tensor, ks: list[int]) -> list[float]:
    scores = []
    for k in ks:
        z = x.clone()
        drop = order[:, :k]
        z.scatter_(1, drop, baseline.expand_as(x).gather(1, drop))
        scores.append(float((model(z).argmax(1) == y).float().mean()))
    return scores


def test_deletion_curve_drops_faster_than_random_deletion():
    # 4 classes decided by 6 of 20 features (with different weights), the rest noise.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(800, 20, generator=g)
    w = torch.randn(6, 4, generator=g) * torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])[:, None]
    y = (x[:, :6] @ w).argmax(1)
    model = _train(x, y, 4, steps=400)
    test_x, test_y = x[600:], y[600:]
    baseline = x[:600].mean(0)
    a = attribute(model, test_x, model(test_x).argmax(1), baseline=baseline)
    ks = list(range(0, 21, 2))
    ranked = _accuracy_when_deleting(model, test_x, test_y, torch.argsort(a.abs(), 1, descending=True), baseline, ks)
    rng = torch.Generator().manual_seed(3)
    randoms = [_accuracy_when_deleting(model, test_x, test_y,
                                       torch.stack([torch.randperm(20, generator=rng) for _ in range(len(test_x))]),
                                       baseline, ks) for _ in range(5)]
    random_curve = np.mean(randoms, axis=0)
    # area under the deletion curve (lower = the attribution found what the model uses)
    assert np.trapezoid(ranked, ks) < 0.8 * np.trapezoid(random_curve, ks), (ranked, random_curve.tolist())
    assert ranked[3] < random_curve[3] - 0.15  # after 6 deletions: the deciding features are gone
