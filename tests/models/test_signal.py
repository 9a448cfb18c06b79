"""Signal models: the automatic choice, shapes, spec round trip, determinism, and learning MNIST-1D."""

from __future__ import annotations

import pytest
import torch

from trainground.errors import ConfigError
from trainground.models import MLP, ModelConfig, SignalCNN, SignalRNN, build_model, model_from_spec


def test_auto_picks_the_1d_cnn_for_signals_only():
    assert isinstance(build_model(ModelConfig(), input_shape=(40,), num_classes=10, kind="signal"), SignalCNN)
    assert isinstance(build_model(ModelConfig(), input_shape=(2, 64), num_classes=3), SignalCNN)
    assert isinstance(build_model(ModelConfig(), input_shape=(40,), num_classes=10, kind="table"), MLP)


@pytest.mark.parametrize("name", ["cnn1d", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(40,), (1, 37), (3, 100)])
def test_shapes_and_spec_round_trip(name, shape):
    torch.manual_seed(0)
    x = torch.randn(5, *shape) * 4 + 2
    model = build_model(ModelConfig(name=name), input_shape=shape, num_classes=4, train_features=x).eval()
    assert model(x).shape == (5, 4)
    assert model.embed(x).shape[0] == 5
    clone = model_from_spec(model.spec())
    clone.load_state_dict(model.state_dict())
    assert torch.equal(model(x), clone.eval()(x))


def test_recurrent_frames_keep_sequences_short():
    model = build_model(ModelConfig(name="gru"), input_shape=(1024,), num_classes=3)
    assert isinstance(model, SignalRNN) and model.frame == 16  # 64 steps of 16 samples
    assert build_model(ModelConfig(name="lstm", frame=8), input_shape=(1024,), num_classes=3).frame == 8


def test_signal_models_refuse_images():
    with pytest.raises(ConfigError, match="cnn1d"):
        build_model(ModelConfig(name="cnn1d"), input_shape=(1, 8, 8), num_classes=2)
    with pytest.raises(ConfigError, match="odd"):
        build_model(ModelConfig(name="cnn1d", kernel_size=4), input_shape=(50,), num_classes=2)


def test_input_standardisation_is_one_scalar_per_channel():
    x = torch.randn(64, 2, 50) * torch.tensor([[[3.0], [0.5]]]) + torch.tensor([[[1.0], [-2.0]]])
    model = build_model(ModelConfig(name="cnn1d"), input_shape=(2, 50), num_classes=2, train_features=x)
    assert model.normalize.mean.shape == (2, 1)
    assert torch.allclose(model.normalize.mean.flatten(), x.mean(dim=(0, 2)), atol=1e-5)


@pytest.mark.parametrize("name", ["cnn1d", "gru"])
def test_same_seed_same_model_and_outputs(name):
    x = torch.randn(8, 60)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(build_model(ModelConfig(name=name), input_shape=(60,), num_classes=3, train_features=x).eval()(x))
    assert torch.equal(outs[0], outs[1])


def _train_accuracy(name: str, epochs: int) -> float:
    pytest.importorskip("mnist1d")
    from trainground.data.builtin import load_builtin

    data = load_builtin("mnist1d")
    assert data.kind == "signal"
    x, y = data.features, data.labels
    train, test = slice(0, 4000), slice(4000, 5000)  # the package's own train/test parts
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), input_shape=data.input_shape, num_classes=10, kind=data.kind,
                        train_features=x[train])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(4000, generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x[test]).argmax(1) == y[test]).float().mean())


def test_cnn1d_learns_mnist1d_in_a_few_epochs():
    assert _train_accuracy("cnn1d", epochs=2) > 0.5  # chance is 0.1


def test_gru_learns_mnist1d_above_chance():
    # twice chance (0.1), > 10 binomial standard deviations over 1000 test signals
    assert _train_accuracy("gru", epochs=2) > 0.2


def test_per_signal_scaling_makes_the_cnn_blind_to_gain():
    torch.manual_seed(0)
    x = torch.randn(6, 80)
    model = build_model(ModelConfig(name="cnn1d", per_signal=True), input_shape=(80,), num_classes=3).eval()
    assert torch.allclose(model(x), model(3.0 * x), atol=1e-5)
    clone = model_from_spec(model.spec())
    assert clone.per_signal
