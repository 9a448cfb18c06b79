"""Each training check fires on a small deliberately broken run and stays silent on a healthy one
(fast versions of benchmarks/diagnosis_suite.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, Severity
from trainground.engine import FitConfig, fit
from trainground.gradients import GuardConfig
from trainground.models import MLP
from trainground.models.standardize import Standardize

FAST = DiagnosisConfig(sample_every=2, min_dead_samples=256)


class Deep(nn.Module):
    def __init__(self, x: torch.Tensor, *, width: int, depth: int, act: type[nn.Module], scale: float = 1.0,
                 bias: float | None = None) -> None:
        super().__init__()
        self.normalize = Standardize((x.shape[1],)).fit(x, dims=(0,))
        layers: list[nn.Module] = []
        for i in range(depth):
            linear = nn.Linear(x.shape[1] if i == 0 else width, width)
            with torch.no_grad():
                linear.weight.mul_(scale)
                if bias is not None:
                    linear.bias.fill_(bias)
            layers += [linear, act()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.normalize(x)))


@pytest.fixture(scope="module")
def small(digits):
    return digits.subset(torch.arange(800).numpy())


# The Guard (fit's default) contains exploding and diverging runs; the checks must still
# recognise those pathologies where no Guard protects the loop.
UNGUARDED = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


def _diagnose(data, model: nn.Module, *, epochs: int = 6, guard: GuardConfig | None = None, **fit_options) -> list:
    callback = DiagnosisCallback(FAST)
    config = FitConfig(epochs=epochs, batch_size=64, device="cpu", val_fraction=0.2, **fit_options)
    fit(model, data, config=config, callbacks=[callback], guard=guard)
    return [f for f in callback.findings if f.severity >= Severity.WARNING]


def _mlp(data, hidden=(64, 64)) -> nn.Module:
    torch.manual_seed(0)
    return MLP(64, 10, hidden=hidden).fit_input_stats(data.features)


def test_healthy_run_has_no_warning(small):
    assert _diagnose(small, _mlp(small), epochs=8) == []


def test_sgd_healthy_run_has_no_warning(small):
    assert _diagnose(small, _mlp(small), epochs=8, optimizer="sgd", lr=0.05) == []


def _checks(findings) -> set[str]:
    return {f.check for f in findings}


def test_vanishing_gradients_in_deep_sigmoid_net(small):
    torch.manual_seed(0)
    found = _diagnose(small, Deep(small.features, width=32, depth=8, act=nn.Sigmoid))
    assert "vanishing_gradients" in _checks(found)


def test_dead_units_with_negative_biases(small):
    torch.manual_seed(0)
    found = _diagnose(small, Deep(small.features, width=64, depth=2, act=nn.ReLU, bias=-5.0))
    dead = [f for f in found if f.check == "dead_units"]
    assert dead and dead[0].severity is Severity.ERROR and dead[0].subject.startswith("layer:body.")


def test_saturation_with_huge_tanh_weights(small):
    torch.manual_seed(0)
    found = _diagnose(small, Deep(small.features, width=64, depth=2, act=nn.Tanh, scale=10.0))
    assert "saturated_activations" in _checks(found)


def test_frozen_layer_with_requires_grad_off(small):
    model = _mlp(small)
    for p in model.body[2].parameters():
        p.requires_grad_(False)
    found = _diagnose(small, model)
    frozen = [f for f in found if f.check == "frozen_layer"]
    assert [f.subject for f in frozen] == ["layer:body.2"] and frozen[0].step == 1


def test_collapse_with_a_bottleneck(small):
    found = _diagnose(small, _mlp(small, hidden=(64, 2)))
    assert "representation_collapse" in _checks(found)


def test_exploding_with_huge_init(small):
    torch.manual_seed(0)
    found = _diagnose(small, Deep(small.features, width=64, depth=6, act=nn.ReLU, scale=10.0), optimizer="sgd", lr=0.01,
                       guard=UNGUARDED)
    assert "exploding_gradients" in _checks(found)


def test_lr_too_low(small):
    found = _diagnose(small, _mlp(small), optimizer="sgd", lr=1e-4)
    assert "lr_too_low" in _checks(found)


def test_lr_too_high_diverges(small):
    found = _diagnose(small, _mlp(small, hidden=(256, 256)), optimizer="sgd", lr=3.0, guard=UNGUARDED)
    assert {"lr_too_high", "loss_spikes"} <= _checks(found)


@pytest.mark.parametrize("name,optimizer,epochs",
                         [("iris", "adam", 60), ("wine", "adamw", 100), ("breast_cancer", "adam", 30)])
def test_a_small_table_with_small_batches_raises_no_training_warning(name, optimizer, epochs):
    """Issue 14's setting: a small public table, the default model, lr 1e-2, batch 16, fit's 10 %
    split (15 / 18 / 57 validation rows). Before the noise floors iris raised "41 loss spikes" and
    an overfitting warning; before the starting loss was read at the first step, wine raised
    lr_too_low and plateau and breast_cancer lr_too_high (the loss had "diverged" from the median
    of its first 10 steps, a model that had already learnt), then guard_stall: the Guard's old
    default AutoClip p10 followed a fitted model's near-zero gradients down to ~1e-9 and froze
    the weights; its outlier-only z-score default leaves them alone."""
    from sklearn import datasets

    from trainground.data import IndexedDataset, LabelEncoder, stratified_split
    from trainground.models import ModelConfig, build_model

    d = getattr(datasets, f"load_{name}")()
    data = IndexedDataset(features=torch.tensor(d.data, dtype=torch.float32), labels=torch.tensor(d.target),
                          index=torch.arange(len(d.target)), encoder=LabelEncoder.fit(d.target), kind="table",
                          name=name)
    train_pos, val_pos = stratified_split(d.target, fraction=0.1, seed=0)
    train, val = data.subset(train_pos), data.subset(val_pos)
    torch.manual_seed(0)
    model = build_model(ModelConfig(), input_shape=train.input_shape, num_classes=len(set(d.target.tolist())),
                        train_features=train.features)
    callback = DiagnosisCallback(DiagnosisConfig(check_every=50), train_data=train, val_data=val)
    config = FitConfig(optimizer=optimizer, lr=1e-2, batch_size=16, epochs=epochs, seed=0, device="cpu", threads=1,
                       weight_decay=1e-2 if optimizer == "adamw" else 0.0)
    fit(model, train, val_data=val, config=config, callbacks=[callback])
    assert not [f.message for f in callback.findings if f.severity >= Severity.WARNING]
