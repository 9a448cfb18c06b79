from __future__ import annotations

import pytest
import torch

from trainground.errors import ConfigError
from trainground.models import (
    MLP,
    ModelConfig,
    SmallCNN,
    Standardize,
    build_model,
    model_from_spec,
)


def test_auto_picks_mlp_for_tables_and_cnn_for_images():
    assert isinstance(build_model(ModelConfig(), input_shape=(64,), num_classes=10), MLP)
    assert isinstance(build_model(ModelConfig(), input_shape=(3, 16, 16), num_classes=4), SmallCNN)


def test_wrong_model_for_the_data_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="mlp"):
        build_model(ModelConfig(name="mlp"), input_shape=(1, 8, 8), num_classes=2)
    with pytest.raises(ConfigError, match="cnn"):
        build_model(ModelConfig(name="cnn"), input_shape=(8,), num_classes=2)


@pytest.mark.parametrize("shape", [(5,), (1, 8, 8), (3, 1, 1), (3, 32, 24)])
def test_spec_round_trip_rebuilds_the_same_function(shape):
    torch.manual_seed(0)
    x = torch.randn(4, *shape) * 3 + 1
    model = build_model(ModelConfig(), input_shape=shape, num_classes=3, train_features=x).eval()
    clone = model_from_spec(model.spec())
    clone.load_state_dict(model.state_dict())
    clone.eval()
    assert model(x).shape == (4, 3)
    assert torch.equal(model(x), clone(x))


def test_standardize_uses_training_statistics_and_leaves_constant_features_finite():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    norm = Standardize((2,)).fit(x, dims=(0,))
    out = norm(x)
    assert torch.allclose(out[:, 0], torch.tensor([-1.0, 1.0]))
    assert torch.equal(out[:, 1], torch.zeros(2))  # constant column: std taken as 1, not 0


def test_input_statistics_travel_with_the_state_dict():
    x = torch.randn(32, 4) * 10 + 7
    model = build_model(ModelConfig(), input_shape=(4,), num_classes=2, train_features=x)
    state = model.state_dict()
    assert torch.allclose(state["normalize.mean"], x.mean(0))


def test_unknown_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot rebuild"):
        model_from_spec({"name": "transformer"})
