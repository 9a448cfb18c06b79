"""Data edits: actions change the repair state exactly as documented, and the training view."""

from __future__ import annotations

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.repair import Action
from trainground.repair.edits import (
    RepairState,
    apply_data_actions,
    round_loss,
    training_view,
)


def data(n=6) -> IndexedDataset:
    return IndexedDataset(features=torch.arange(n * 2, dtype=torch.float32).reshape(n, 2),
                          labels=torch.tensor([0, 1, 2, 0, 1, 2][:n]), index=torch.arange(10, 10 + n),
                          encoder=LabelEncoder(("a", "b", "c")), kind="table", name="t")


def act(kind, target=None, value=None):
    return Action(kind, "test", "because", target=target, value=value)


def test_each_edit_and_priority_within_a_round():
    state = RepairState.initial(data())
    new, applied = apply_data_actions(state, [
        act("relabel", 10, 2), act("reweight", 11, 0.5), act("quarantine", 12),
        act("relabel", 13, 1), act("drop_duplicate", 13),        # drop beats relabel on the same sample
        act("relabel", 14, 1),                                   # a no-op: already 1
        act("class_weights", value=[1.0, 2.0, 0.5]), act("set_lr", value=0.1),
    ])
    assert new.labels.tolist() == [2, 1, 2, 0, 1, 2]
    assert new.excluded.tolist() == ["", "", "quarantine", "drop_duplicate", "", ""]
    assert new.weights.tolist() == [1, 0.5, 1, 1, 1, 1]
    assert new.class_weights.tolist() == [1.0, 2.0, 0.5]
    assert [a.action for a in applied] == ["class_weights", "relabel", "reweight", "quarantine", "drop_duplicate"]
    assert state.labels.tolist() == [0, 1, 2, 0, 1, 2] and state.excluded.tolist() == [""] * 6  # pure
    # effective weight: own weight x class weight of the repaired label
    assert new.effective_weights().tolist() == [0.5, 1.0, 0.5, 1.0, 2.0, 0.5]


def test_excluded_samples_ignore_later_actions_and_relabel_resets_weight():
    state, _ = apply_data_actions(RepairState.initial(data()), [act("quarantine", 10), act("reweight", 11, 0.3)])
    state, applied = apply_data_actions(state, [act("relabel", 10, 1), act("relabel", 11, 0)])
    assert [a.target for a in applied] == [11]
    assert state.labels[1] == 0 and state.weights[1] == 1.0 and state.excluded[0] == "quarantine"


def test_training_view_keeps_the_frozen_rows_as_given():
    d = data()
    state, _ = apply_data_actions(RepairState.initial(d), [act("relabel", 10, 2), act("relabel", 11, 0),
                                                           act("quarantine", 12), act("quarantine", 13)])
    frozen = np.array([False, True, False, True, False, False])
    view, val = training_view(d, state, frozen)
    assert view.index.tolist() == [10, 11, 13, 14, 15]      # 12 excluded; 13 frozen so still validated on
    assert view.labels.tolist() == [2, 1, 0, 1, 2]          # frozen 11 and 13 keep their given labels
    assert view.index[val].tolist() == [11, 13]


def test_round_loss_applies_sample_and_class_weights_by_input_index():
    d = data()
    assert round_loss(RepairState.initial(d), 3) is None
    state, _ = apply_data_actions(RepairState.initial(d), [act("reweight", 11, 0.0), act("class_weights", value=[1, 1, 3])])
    loss = round_loss(state, 3)
    logits = torch.randn(3, 3)
    y = torch.tensor([0, 1, 2])
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = (per[0] * 1 + per[2] * 3) / 4  # row 11 weight 0; class 2 weight 3
    assert torch.isclose(loss.indexed_loss(logits, y, torch.tensor([10, 11, 12])), expected)


def test_repair_rounds_leave_the_frozen_rows_out():
    d = data()
    state, _ = apply_data_actions(RepairState.initial(d), [act("relabel", 10, 2), act("quarantine", 12)])
    frozen = np.array([False, True, False, True, False, False])
    view, val = training_view(d, state, frozen, with_frozen=False)
    assert val is None and view.index.tolist() == [10, 14, 15] and view.labels.tolist() == [2, 1, 2]
