"""Data edits: how relabel / quarantine / reweight / drop_duplicate / class_weights actions
change the data of the next round.

The state of a repair is a :class:`RepairState` over every input row (labels, exclusion,
per-sample weights, class weights); :func:`apply_data_actions` returns a new state and the
actions that actually changed something, and :func:`training_view` turns a state into the
dataset and loss a round trains with. Pure functions over arrays: nothing here trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from trainground.data import IndexedDataset
from trainground.losses import SampleWeights, WeightedCrossEntropy
from trainground.losses.gce import DEFAULT_Q, GeneralizedCrossEntropy
from trainground.repair.actions import Action

# When two policies act on the same sample in one round, the strongest edit wins: leaving
# training beats changing the label, which beats changing the weight (a relabelled sample
# starts again at weight 1: the doubt was about its old label).
PRIORITY = {"drop_duplicate": 0, "quarantine": 1, "relabel": 2, "reweight": 3}

# The loss of a round: plain cross-entropy, or generalized cross-entropy (see round_loss).
RoundLoss = Literal["ce", "gce"]


@dataclass(frozen=True)
class RepairState:
    """Labels, exclusions and weights of every input row, in the original data's order.

    Args:
        index: ``[N]`` input indices.
        original: ``[N]`` class ids as given.
        labels: ``[N]`` class ids after the repairs so far.
        excluded: ``[N]`` "" for a kept row, else the action that excluded it
            (``"quarantine"`` or ``"drop_duplicate"``).
        weights: ``[N]`` per-sample loss weights (1 = untouched).
        class_weights: ``[C]`` loss weight of each class, or None.
    """

    index: np.ndarray
    original: np.ndarray
    labels: np.ndarray
    excluded: np.ndarray
    weights: np.ndarray
    class_weights: np.ndarray | None = None

    @classmethod
    def initial(cls, data: IndexedDataset) -> RepairState:
        labels = data.labels.numpy().copy()
        n = len(labels)
        return cls(data.index.numpy().copy(), labels.copy(), labels, np.full(n, "", dtype=object), np.ones(n))

    @property
    def uses_weights(self) -> bool:
        kept = self.excluded == ""
        return bool((self.weights[kept] != 1.0).any()) or self.class_weights is not None

    def effective_weights(self) -> np.ndarray:
        """Each row's weight in the loss: its own weight times its (repaired) class's weight."""
        if self.class_weights is None:
            return self.weights.copy()
        return self.weights * np.asarray(self.class_weights)[self.labels]


def apply_data_actions(state: RepairState, actions: Sequence[Action]) -> tuple[RepairState, list[Action]]:
    """Apply the data actions of one round; return the new state and the actions that changed it.

    Per sample, only the highest-priority action of the round applies (:data:`PRIORITY`);
    an action that changes nothing (a relabel to the current label, a weight already set,
    anything on an excluded sample) is dropped, so every returned action is a real change.
    Training actions are ignored.
    """
    position = {int(i): p for p, i in enumerate(state.index)}
    labels, excluded, weights = state.labels.copy(), state.excluded.copy(), state.weights.copy()
    class_weights = state.class_weights
    chosen: dict[int, Action] = {}
    applied: list[Action] = []
    for action in actions:
        if action.action == "class_weights":
            new = np.asarray(action.value, dtype=float)
            if class_weights is None or not np.allclose(new, class_weights):
                class_weights = new
                applied.append(action)
            continue
        if action.action not in PRIORITY:
            continue
        pos = position.get(int(action.target))
        if pos is None:
            continue
        best = chosen.get(pos)
        if best is None or PRIORITY[action.action] < PRIORITY[best.action]:
            chosen[pos] = action
    for pos, action in sorted(chosen.items()):
        if excluded[pos]:
            continue
        if action.action in ("quarantine", "drop_duplicate"):
            excluded[pos] = action.action
        elif action.action == "relabel":
            if int(action.value) == labels[pos]:
                continue
            labels[pos], weights[pos] = int(action.value), 1.0
        else:  # reweight
            if float(action.value) == weights[pos]:
                continue
            weights[pos] = float(action.value)
        applied.append(action)
    new_state = dataclasses.replace(state, labels=labels, excluded=excluded, weights=weights,
                                    class_weights=class_weights)
    return new_state, applied


def training_view(data: IndexedDataset, state: RepairState, frozen: np.ndarray, *, with_frozen: bool = True
                  ) -> tuple[IndexedDataset, np.ndarray | None]:
    """The dataset a round trains on, and the positions of its validation rows.

    With ``with_frozen`` (round 0), the rows of the frozen validation split (``frozen``, a
    mask over ``data``) are the validation rows, with their original labels, never
    excluded; the other rows carry the repaired labels, excluded ones left out. Without it
    (the repair rounds), the frozen rows are left out altogether, so no round ever trains
    on them and they can judge every round alike; the validation positions are then None
    (the round draws its own split from the repaired rows).
    """
    if not with_frozen:
        rows = np.flatnonzero(~frozen & (state.excluded == ""))
        return data.with_labels(state.labels).subset(rows), None
    keep = frozen | (state.excluded == "")
    labels = np.where(frozen, state.original, state.labels)
    view = data.with_labels(labels).subset(np.flatnonzero(keep))
    return view, np.flatnonzero(frozen[keep])


def round_loss(state: RepairState, num_classes: int, *, kind: RoundLoss = "ce") -> torch.nn.Module | None:
    """The loss with the state's class and per-sample weights (None: plain cross-entropy).

    Per-sample weights reach the loss through :class:`~trainground.losses.SampleWeights`,
    looked up by each batch's input index; validation uses the class weights only.

    ``kind="gce"`` gives generalized cross-entropy (``q`` = the paper's 0.7) with the same
    weights. The repair loop trains every round with it by default. Round 0 trains on the
    labels as given, the very setting the loss was designed for: a wrong label costs at
    most ``1 / q`` and pulls ``p_y^q`` times less than under cross-entropy, so the model
    memorises less of the noise and the probabilities the diagnosis reads (the
    early-learning window, confident learning) stay closer to the clean ones. The repair
    rounds still hold the noise the diagnosis missed, the more of it the weaker the
    model; the bound applies there too, in training and in the early-stopping loss on the
    round's own (equally repaired) validation rows.

    References:
        Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks
        with Noisy Labels", NeurIPS 2018.
    """
    sample = SampleWeights(state.index, state.weights) if (state.weights != 1.0).any() else None
    class_weight = None if state.class_weights is None else torch.as_tensor(state.class_weights, dtype=torch.float32)
    if class_weight is not None and len(class_weight) != num_classes:
        class_weight = None
    if kind == "gce":
        return GeneralizedCrossEntropy(DEFAULT_Q, class_weight, sample_weights=sample)
    if not state.uses_weights:
        return None
    return WeightedCrossEntropy(class_weight, sample_weights=sample)
