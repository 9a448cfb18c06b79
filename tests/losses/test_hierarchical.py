import pytest
import torch
import torch.nn.functional as F

from trainground.errors import ConfigError
from trainground.losses import (
    HierarchicalCrossEntropy,
    coarse_logits,
    hierarchical_accuracy,
    hierarchical_cross_entropy,
    tree_to_index,
)

TREE = {0: "animal", 1: "animal", 2: "vehicle", 3: "vehicle", 4: "vehicle", 5: "plant"}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(2)
    return torch.randn(30, 6, generator=g) * 2, torch.randint(0, 6, (30,), generator=g)


def test_trivial_trees_reduce_to_cross_entropy(batch):
    logits, y = batch
    ce = F.cross_entropy(logits, y)
    one_root = torch.zeros(6, dtype=torch.long)  # every fine class under one coarse class
    assert torch.allclose(hierarchical_cross_entropy(logits, y, one_root, coarse_weight=0.7), ce, atol=1e-6)
    identity = torch.arange(6)  # each fine class its own coarse class: the coarse term is CE again
    assert torch.allclose(hierarchical_cross_entropy(logits, y, identity, coarse_weight=0.5), 1.5 * ce, atol=1e-5)
    assert torch.allclose(HierarchicalCrossEntropy({f: "all" for f in range(6)})(logits, y), ce, atol=1e-6)


def test_coarse_marginal_is_the_sum_of_fine_probabilities(batch):
    logits, _ = batch
    index, labels = tree_to_index(TREE)
    assert labels == ["animal", "vehicle", "plant"] and index.tolist() == [0, 0, 1, 1, 1, 2]
    p = torch.softmax(logits, -1)
    expected = torch.stack([p[:, :2].sum(1), p[:, 2:5].sum(1), p[:, 5]], 1)
    assert torch.allclose(torch.softmax(coarse_logits(logits, index, 3), -1), expected, atol=1e-6)
    assert torch.allclose(torch.softmax(coarse_logits(logits, index), -1), expected, atol=1e-6)


def test_loss_is_fine_plus_lambda_coarse(batch):
    logits, y = batch
    loss = HierarchicalCrossEntropy(TREE, coarse_weight=0.3)
    coarse = F.cross_entropy(coarse_logits(logits, loss.fine_to_coarse, 3), loss.coarse_targets(y))
    assert torch.allclose(loss(logits, y), F.cross_entropy(logits, y) + 0.3 * coarse, atol=1e-5)


def test_a_mistake_across_groups_costs_more_than_within():
    loss = HierarchicalCrossEntropy(TREE, coarse_weight=1.0)
    within = torch.tensor([[0.0, 3.0, 0, 0, 0, 0]])   # true 0, predicts 1 (same group)
    across = torch.tensor([[0.0, 0, 0, 0, 0, 3.0]])   # true 0, predicts 5 (other group)
    y = torch.tensor([0])
    assert loss(across, y) > loss(within, y)
    assert F.cross_entropy(across, y) == pytest.approx(F.cross_entropy(within, y).item())


def test_accuracy_at_both_levels():
    loss = HierarchicalCrossEntropy(TREE)
    logits = torch.tensor([[0.0, 5, 0, 0, 0, 0], [5.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 5.0]])
    y = torch.tensor([0, 0, 2])
    acc = {k: v.item() for k, v in loss.accuracy(logits, y).items()}
    assert acc["fine_accuracy"] == pytest.approx(1 / 3)
    assert acc["coarse_accuracy"] == pytest.approx(2 / 3)
    assert acc["coarse_of_fine_accuracy"] == pytest.approx(2 / 3)
    assert hierarchical_accuracy(logits, y, loss.fine_to_coarse)["fine_accuracy"].item() == pytest.approx(1 / 3)


def test_bad_trees_raise():
    with pytest.raises(ConfigError, match="missing \\[1\\]"):
        tree_to_index({0: "a", 2: "b"}, 3)
    with pytest.raises(ConfigError, match="unknown \\[7\\]"):
        tree_to_index({0: "a", 7: "b"}, 1)
    with pytest.raises(ConfigError, match="coarse_weight"):
        HierarchicalCrossEntropy(TREE, coarse_weight=-1)
    assert tree_to_index(["x", "y", "x"])[0].tolist() == [0, 1, 0]


def test_usable_as_the_loss_of_fit(digits):
    from trainground.engine import FitConfig, fit

    data = digits.subset(torch.arange(300))
    loss = HierarchicalCrossEntropy({d: d % 2 for d in range(10)}, coarse_weight=0.5)  # parity groups
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    result = fit(model, data, loss_fn=loss, config=FitConfig(epochs=3, lr=1e-2, val_fraction=0.0, device="cpu"))
    assert result.history[-1]["train_accuracy"] > 0.8
    with torch.no_grad():
        acc = loss.accuracy(model(data.features), data.labels)
    assert acc["coarse_accuracy"] >= acc["fine_accuracy"]
