import torch

from trainground.engine import FitConfig, fit
from trainground.losses import (
    SampleWeights,
    WeightedCrossEntropy,
    loss_for_batch,
    weighted_cross_entropy,
)


def test_lookup_by_input_index_with_default():
    sw = SampleWeights.where(torch.tensor([100, 7, 42]), torch.tensor([True, False, True]), weight=10.0)
    got = sw(torch.tensor([7, 42, 5, 100, 1000]))
    assert got.tolist() == [1.0, 10.0, 1.0, 10.0, 1.0]
    empty = SampleWeights(torch.zeros(0, dtype=torch.long), torch.zeros(0), default=2.0)
    assert empty(torch.tensor([1, 2])).tolist() == [2.0, 2.0]


def test_state_dict_round_trip():
    sw = SampleWeights(torch.tensor([3, 1]), torch.tensor([2.0, 5.0]), default=0.5)
    other = SampleWeights(torch.tensor([0]), torch.tensor([1.0]))
    other.load_state_dict(sw.state_dict())
    assert other(torch.tensor([1, 3, 9])).tolist() == [5.0, 2.0, 0.5]


def test_indexed_loss_in_a_plain_loop_weights_the_events():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)
    index = torch.arange(100, 108)
    sw = SampleWeights.where(index, index % 4 == 0, weight=10.0)
    loss = WeightedCrossEntropy(sample_weights=sw)
    w = torch.where(index % 4 == 0, 10.0, 1.0)
    assert torch.allclose(loss.indexed_loss(logits, y, index), weighted_cross_entropy(logits, y, sample_weight=w))
    assert torch.allclose(loss_for_batch(loss, logits, y, index), loss.indexed_loss(logits, y, index))
    # Without the index (validation), the event weights do not apply.
    assert torch.allclose(loss(logits, y), weighted_cross_entropy(logits, y))
    assert torch.allclose(loss_for_batch(torch.nn.CrossEntropyLoss(), logits, y, index), loss(logits, y))


def test_fit_passes_the_batch_index_to_the_loss(digits):
    seen = []

    class Spy(WeightedCrossEntropy):
        def indexed_loss(self, logits, target, index):
            seen.append(index.clone())
            return super().indexed_loss(logits, target, index)

    data = digits.subset(torch.arange(200))
    sw = SampleWeights.from_dataset(data, lambda index, x, y: y == 3, weight=10.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    fit(model, data, config=FitConfig(epochs=1, batch_size=50, val_fraction=0.0, device="cpu"),
        loss_fn=Spy(sample_weights=sw))
    assert torch.cat(seen).sort().values.tolist() == data.index.tolist()


def test_event_weight_changes_what_fit_learns(digits):
    # Weighting the 3s 20x must raise the model's probability of class 3 on them.
    data = digits.subset(torch.arange(300))

    def train(loss_fn):
        torch.manual_seed(0)
        model = torch.nn.Linear(64, 10)
        fit(model, data, config=FitConfig(epochs=2, batch_size=64, lr=1e-2, val_fraction=0.0, device="cpu"),
            loss_fn=loss_fn)
        with torch.no_grad():
            p = torch.softmax(model(data.features), -1)
        return p[data.labels == 3, 3].mean().item()

    sw = SampleWeights.from_dataset(data, lambda index, x, y: y == 3, weight=20.0)
    weighted, plain = train(WeightedCrossEntropy(sample_weights=sw)), train(WeightedCrossEntropy())
    assert weighted > plain + 0.1
