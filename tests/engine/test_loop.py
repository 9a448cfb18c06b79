from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from trainground.engine import FitConfig, fit, read_metrics
from trainground.errors import ConfigError
from trainground.models import ModelConfig, build_model


def _model(seed=0, features=None):
    torch.manual_seed(seed)
    return build_model(ModelConfig(), input_shape=(64,), num_classes=10, train_features=features)


def test_fit_learns_digits(digits):
    result = fit(_model(features=digits.features), digits, config=FitConfig(epochs=8, device="cpu"))
    assert result.final["val_accuracy"] > 0.93
    assert result.final["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_weights_other_seed_other_batches(digits):
    cfg = FitConfig(epochs=2, device="cpu")
    a = fit(_model(), digits, config=cfg).model.state_dict()
    b = fit(_model(), digits, config=cfg).model.state_dict()
    c = fit(_model(), digits, config=FitConfig(epochs=2, device="cpu", seed=1)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_validation_split_is_stratified_disjoint_and_in_input_indices(digits):
    data = digits.subset(torch.arange(100, 1100))  # input indices 100..1099
    result = fit(_model(), data, config=FitConfig(epochs=1, val_fraction=0.2, device="cpu"))
    train, val = set(result.train_index.tolist()), set(result.val_index.tolist())
    assert not train & val
    assert train | val == set(range(100, 1100))
    assert len(val) == 200
    val_labels = digits.labels[result.val_index].numpy()
    counts = np.bincount(val_labels, minlength=10)
    assert counts.min() >= 17 and counts.max() <= 23  # ~20 per class, not chance


def test_metrics_file_has_every_step_and_epoch(digits, tmp_path):
    cfg = FitConfig(epochs=3, batch_size=100, log_every=7, device="cpu")
    result = fit(_model(), digits, config=cfg, run_dir=tmp_path / "run")
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, result.steps + 1))
    assert len(epochs) == 3 and epochs[-1]["step"] == result.steps
    assert all(np.isfinite(r["loss"]) and r["lr"] == 1e-3 for r in steps)
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(epochs[-1])
    # the epoch's train loss is the sample-weighted mean of its step losses
    last = [r["loss"] for r in steps if r["epoch"] == 2]
    assert abs(np.mean(last) - epochs[-1]["train_loss"]) < 0.05
    assert (tmp_path / "run" / "model.safetensors").is_file()


class PlainDataset(Dataset):
    """A user's own map-style dataset yielding (index, x, y), without labels attribute."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return i + 1000, self.x[i], self.y[i]


def test_any_dataset_of_index_x_y_and_custom_loss_and_optimizer_work(digits):
    data = PlainDataset(digits.features[:300], digits.labels[:300])
    model = _model(features=digits.features)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    seen = []

    def loss_fn(logits, y):
        seen.append(len(y))
        return torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)

    result = fit(model, data, config=FitConfig(epochs=2, batch_size=32, val_fraction=0.1),
                 loss_fn=loss_fn, optimizer=optimizer)
    # without an `index` attribute, the split is reported as positions in `data`
    assert set(result.train_index) | set(result.val_index) == set(range(300)) and len(result.val_index) == 30
    assert sum(seen) >= 2 * 270
    assert result.final["val_accuracy"] > 0.5


def test_bad_loop_options_are_config_errors(digits):
    with pytest.raises(ConfigError, match="epochs"):
        fit(_model(), digits, config=FitConfig(epochs=0))
    with pytest.raises(ConfigError, match="run_dir"):
        fit(_model(), digits, config=FitConfig(epochs=1), resume=True)


def test_tensor_dataset_and_x_y_items_are_indexed_by_position(digits):
    from torch.utils.data import TensorDataset

    pairs = TensorDataset(digits.features, digits.labels)
    model = build_model(ModelConfig(), input_shape=digits.input_shape, num_classes=10)
    result = fit(model, pairs, config=FitConfig(epochs=3, val_fraction=0.2, threads=1))
    assert result.final["val_accuracy"] > 0.8
    # indexed by position, and the split is stratified on the TensorDataset's labels
    assert sorted(np.concatenate([result.train_index, result.val_index]).tolist()) == list(range(len(pairs)))
    val_counts = np.bincount(digits.labels.numpy()[result.val_index], minlength=10)
    assert val_counts.min() >= 30

    class Pairs(Dataset):  # (x, y) items of a plain map-style dataset
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return digits.features[i], digits.labels[i]

    fit(build_model(ModelConfig(), input_shape=digits.input_shape, num_classes=10), Pairs(),
        config=FitConfig(epochs=1, val_fraction=0.0, threads=1))


def test_dataset_of_other_items_is_a_data_error(digits):
    from trainground.errors import DataError

    class Bare(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return digits.features[i]

    model = build_model(ModelConfig(), input_shape=digits.input_shape, num_classes=10)
    with pytest.raises(DataError, match=r"\(x, y\) or \(index, x, y\)"):
        fit(model, Bare(), config=FitConfig(epochs=1, val_fraction=0.0))
