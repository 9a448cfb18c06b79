"""The image recipe's schedule: lr from a range test, length in optimizer steps."""

from __future__ import annotations

import torch
from torch import nn

from trainground.engine import FitConfig
from trainground.engine.batches import BatchSource
from trainground.engine.fit_setup import make_optimizer
from trainground.engine.schedule import LR_MAX, LR_MIN, MIN_STEPS, applies, choose_schedule


def _blobs(n: int = 256) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + 2.0 * y[:, None]
    return torch.utils.data.TensorDataset(x, y)


def test_schedule_picks_an_lr_in_bounds_and_enough_steps_without_touching_the_model():
    data = _blobs()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    config = FitConfig(epochs=5, batch_size=64, auto_schedule="always")
    chosen = choose_schedule(model, BatchSource(data), config, nn.CrossEntropyLoss(), make_optimizer,
                             torch.device("cpu"))
    assert LR_MIN <= chosen.lr <= LR_MAX and chosen.auto_schedule == "never"
    assert chosen.batch_size == 16 and chosen.epochs * 16 >= MIN_STEPS  # 256 / 16 = 16 steps per epoch
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    again = choose_schedule(model, BatchSource(data), config, nn.CrossEntropyLoss(), make_optimizer,
                            torch.device("cpu"))
    assert again == chosen  # deterministic: a resumed run chooses the same


def test_schedule_applies_to_images_only_unless_asked():
    class Images:
        kind = "image"

    class Table:
        kind = "table"

    assert not applies(FitConfig(), Images())
    assert applies(FitConfig(auto_schedule="images"), Images())
    assert not applies(FitConfig(auto_schedule="images"), Table())
    assert applies(FitConfig(auto_schedule="always"), Table())
