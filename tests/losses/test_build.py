import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainground.engine import RunConfig
from trainground.errors import ConfigError
from trainground.losses import (
    FocalLoss,
    LossConfig,
    WeightedCrossEntropy,
    build_loss,
    class_weights,
)

LABELS = np.array([0] * 90 + [1] * 9 + [2])


def test_default_is_torch_cross_entropy():
    loss = build_loss(LossConfig())
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    assert build_loss(LossConfig(label_smoothing=0.1)).label_smoothing == 0.1


def test_weighted_and_focal_count_the_training_labels():
    loss = build_loss(LossConfig(name="weighted_ce", weighting="effective_number", beta=0.99), LABELS, num_classes=4)
    assert isinstance(loss, WeightedCrossEntropy)
    assert torch.allclose(loss.class_weight, class_weights([90, 9, 1, 0], scheme="effective_number", beta=0.99))
    focal = build_loss(LossConfig(name="focal", weighting="inverse"), LABELS)
    assert isinstance(focal, FocalLoss) and focal.gamma == 2.0 and len(focal.alpha) == 3
    plain_focal = build_loss(LossConfig(name="focal", gamma=0.0))
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(plain_focal(logits, y), F.cross_entropy(logits, y), atol=1e-6)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "weighted_ce"}, "weighting is required"),
        ({"name": "ce", "weighting": "inverse"}, "plain ce has no class weights"),
        ({"name": "ce", "gamma": 2.0}, "focal-loss option"),
        ({"name": "focal", "gamma": -1.0}, "gamma: must be >= 0"),
        ({"name": "focal", "label_smoothing": 0.1}, "not supported with focal"),
        ({"name": "ce", "label_smoothing": 1.5}, "label_smoothing: must be >= 0 and < 1"),
        ({"name": "weighted_ce", "weighting": "inverse", "beta": 1.0}, "beta"),
        ({"name": "dice"}, "is not one of"),
        ({"weighting": "median"}, "'median' is not one of"),
        ({"gama": 2.0}, "did you mean 'gamma'"),
    ],
)
def test_run_config_validates_the_loss_section(values, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"loss": values})


def test_run_config_round_trip():
    config = RunConfig.from_dict({"loss": {"name": "focal", "weighting": "inverse_sqrt", "gamma": 1.0}})
    assert config.loss == LossConfig(name="focal", weighting="inverse_sqrt", gamma=1.0)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_weighting_without_labels_is_an_error():
    with pytest.raises(ConfigError, match="needs the training labels"):
        build_loss(LossConfig(name="weighted_ce", weighting="inverse"))
