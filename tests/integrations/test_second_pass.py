"""The optional second pass of a watched training: Watch.finish(second_pass=...) and the Lightning option."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainground.data import WithIndex
from trainground.engine import FitConfig
from trainground.errors import ConfigError
from trainground.integrations import SecondPass, SessionConfig, Watch
from trainground.integrations.second_pass import _best_network, stack_inputs

QUICK = SessionConfig(training_checks=None, report=False, patience=2)


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _noisy(digits, n=900, rate=0.25, seed=0):
    x, y = digits.features[:n] / 16.0, digits.labels[:n].numpy().copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(n) < rate
    y[flip] = (y[flip] + 1) % 10  # asymmetric: every flipped label moves to the next class
    return x, torch.tensor(y), flip


def _watched(x, y, model):
    watch = Watch(model, torch.optim.Adam(model.parameters(), lr=2e-3), TensorDataset(x[:800], y[:800]),
                  TensorDataset(x[800:], y[800:]), config=QUICK)
    loader = DataLoader(watch.train_data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(8):
        model.train()
        for index, xb, yb in loader:
            logits = model(xb)
            watch.backward(F.cross_entropy(logits, yb), index=index, logits=logits, labels=yb)
            watch.step()
        model.eval()
        with torch.no_grad():
            for index, xb, yb in DataLoader(watch.val_data, batch_size=256):
                watch.record_val(index, model(xb), yb)
        if watch.end_epoch():
            break
    return watch


def test_watch_second_pass_retrains_and_concludes_every_sample(digits):
    x, y, flip = _noisy(digits)
    initial = _net()
    one = _watched(x, y, copy.deepcopy(initial)).finish()
    two = _watched(x, y, copy.deepcopy(initial)).finish(
        second_pass=SecondPass(model=copy.deepcopy(initial), fit=FitConfig(epochs=8, lr=2e-3, seed=0, device="cpu")))
    assert one.second_pass_presentations == 0
    assert two.second_pass_presentations > 0  # it trained
    assert sorted(two.table["index"]) == list(range(900))
    flagged = two.table.set_index("index").sort_index()["is_label_issue"].to_numpy(dtype=bool)
    assert (flagged & flip).sum() > 0.5 * flip.sum()  # it still finds the flipped labels
    assert not (flagged == one.table.set_index("index").sort_index()["is_label_issue"].to_numpy(dtype=bool)).all()


def test_the_best_weights_are_found_inside_a_wrapping_module():
    net = _net(1)
    wrapped = nn.Module()
    wrapped.net = net
    best = _best_network(_net(2), wrapped.state_dict())
    assert best is not None
    assert torch.equal(best[0].weight, net[0].weight)
    assert _best_network(nn.Linear(3, 3), wrapped.state_dict()) is None  # nothing fits: the recorded features


def test_stack_inputs_puts_rows_at_their_index_and_refuses_ragged_inputs():
    a = WithIndex(TensorDataset(torch.arange(6.0).reshape(3, 2), torch.zeros(3)))
    b = WithIndex(TensorDataset(torch.full((2, 2), 9.0), torch.zeros(2)), offset=3)
    out = stack_inputs([b, a], 5)
    assert out[1].tolist() == [2.0, 3.0] and out[4].tolist() == [9.0, 9.0]
    ragged = [(torch.tensor(0), torch.zeros(2), 0), (torch.tensor(1), torch.zeros(3), 0)]
    with pytest.raises(ConfigError, match="one shape"):
        stack_inputs([ragged], 2)
