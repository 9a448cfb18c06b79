"""The loss each repair round trains with: the repair loss (GCE by default) in every round."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainground.data import inject_label_noise
from trainground.engine import FitConfig, RunConfig
from trainground.errors import ConfigError
from trainground.losses import (
    FocalLoss,
    GeneralizedCrossEntropy,
    LossConfig,
    WeightedCrossEntropy,
)
from trainground.recipes.diagnose import diagnose_dataset
from trainground.repair import RepairState, repair_loop, round_loss


def test_round_loss_kinds_keep_the_state_weights(digits):
    state = RepairState.initial(digits)
    assert round_loss(state, 10) is None  # nothing to weight: plain cross-entropy
    gce = round_loss(state, 10, kind="gce")
    assert isinstance(gce, GeneralizedCrossEntropy) and gce.q == 0.7 and gce.sample_weights is None
    weights = state.weights.copy()
    weights[5] = 0.25
    weighted = dataclasses.replace(state, weights=weights)
    assert isinstance(round_loss(weighted, 10), WeightedCrossEntropy)
    gce = round_loss(weighted, 10, kind="gce")
    assert isinstance(gce, GeneralizedCrossEntropy)
    index = digits.index[:8]
    assert torch.allclose(gce.sample_weights(index), torch.tensor([1, 1, 1, 1, 1, 0.25, 1, 1], dtype=torch.float32))


@pytest.mark.parametrize("repair_loss, expected", [("gce", GeneralizedCrossEntropy), ("ce", type(None))])
def test_every_round_trains_with_the_repair_loss(digits, repair_loss, expected):
    noisy = inject_label_noise(digits.labels.numpy(), kind="symmetric", rate=0.3, seed=0, num_classes=10)
    data = digits.with_labels(noisy.labels)
    seen = []

    def diagnose(view, **kwargs):
        seen.append(kwargs["loss_fn"])
        return diagnose_dataset(view, **kwargs)

    config = RunConfig(fit=FitConfig(epochs=4, seed=0, device="cpu", threads=1))
    result = repair_loop(data, diagnose=diagnose, config=config, max_rounds=1, repair_loss=repair_loss,
                         policies=["relabel", "quarantine"])
    # round 0, the reference round (no edit, trained as round 1 is: the keep rule's comparator), round 1
    assert len(result.rounds) == 2 and len(seen) == 3 and result.reference is not None, result.stopped
    assert all(isinstance(loss, expected) for loss in seen)


def test_a_loss_the_user_chose_is_kept(digits):
    seen = []

    def diagnose(view, **kwargs):
        seen.append(kwargs["loss_fn"])
        return diagnose_dataset(view, **kwargs)

    config = RunConfig(fit=FitConfig(epochs=2, seed=0, device="cpu", threads=1), loss=LossConfig(name="focal"))
    repair_loop(digits, diagnose=diagnose, config=config, max_rounds=0)
    assert len(seen) == 1 and isinstance(seen[0], FocalLoss)


def test_unknown_repair_loss_is_refused(digits):
    with pytest.raises(ConfigError, match="repair_loss"):
        repair_loop(digits, diagnose=diagnose_dataset, repair_loss="mae")  # type: ignore[arg-type]
