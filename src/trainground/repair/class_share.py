"""No class may be eroded: a repair keeps at least three quarters of every class's mass.

A class's *mass* is the sum of the per-sample weights of the kept training rows that carry
its label (an excluded row counts 0, a relabelled row counts for its new class). Against
the mass the class had as given (its row count), no repair may take away more than
:data:`MAX_LOSS` = 1/4, counted over all rounds so far (a series of rounds cannot erode a
class step by step). A repair that would is trimmed: the actions that take mass from the
class are dropped, weakest evidence first (highest score: scores are in [0, 1], low = the
old label is clearly wrong), until the class is back within its floor.

Why a cap at all: the label policies act on rows the model doubts, and a model that has
learned mostly the class prior doubts the rows of the rare classes. A quarter is the
largest loss we accept without a person looking: well above the noise rates a repair is
for (a class with 20 % wrong labels loses 20 % when all of them are removed), and far
below the collapse seen on a hard table (issue 14: 177 rows -> 22, then weighted to
almost nothing). Class weights (the ``rebalance`` policy) are a deliberate prior
correction applied to a whole class, shown in the class table; they are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainground.repair.actions import Action
from trainground.repair.edits import RepairState, apply_data_actions

MAX_LOSS = 0.25
_SAMPLE_EDITS = ("relabel", "quarantine", "drop_duplicate", "reweight")


def class_mass(state: RepairState, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C]`` sum of the per-sample weights of the kept ``rows`` (a mask) per current label."""
    kept = rows & (state.excluded == "")
    return np.bincount(state.labels[kept], weights=state.weights[kept], minlength=num_classes)


def given_mass(state: RepairState, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C]`` rows per class as given (the reference of the cap)."""
    return np.bincount(state.original[rows], minlength=num_classes).astype(float)


def cap_class_loss(state: RepairState, actions: Sequence[Action], rows: np.ndarray, num_classes: int
                   ) -> tuple[RepairState, list[Action], dict[int, int]]:
    """Apply ``actions`` to ``state`` without letting any class fall below ``(1 - MAX_LOSS)`` of its given mass.

    Args:
        state: the state before the round.
        actions: the round's data actions.
        rows: ``[N]`` mask of the rows the cap counts (the training rows: not the frozen validation split).
        num_classes: number of classes.

    Returns:
        The new state, the actions applied, and ``{class id: actions dropped}`` for every class the cap protected.
    """
    floor = (1.0 - MAX_LOSS) * given_mass(state, rows, num_classes)
    position = {int(i): p for p, i in enumerate(state.index)}
    actions = list(actions)
    dropped: dict[int, int] = {}
    for _ in range(num_classes + 1):
        new_state, applied = apply_data_actions(state, actions)
        mass = class_mass(new_state, rows, num_classes)
        short = [c for c in range(num_classes) if mass[c] < floor[c] - 1e-9]
        if not short:
            return new_state, applied, dropped
        removed = set()
        for c in short:
            # Actions of this round that take mass from class c, weakest evidence first.
            takers = [a for a in applied if a.action in _SAMPLE_EDITS and a.target is not None
                      and rows[position[int(a.target)]] and state.labels[position[int(a.target)]] == c]
            takers.sort(key=lambda a: -(a.score if a.score is not None else 1.0))
            need = floor[c] - mass[c]
            for action in takers:
                if need <= 1e-9:
                    break
                pos = position[int(action.target)]
                need -= state.weights[pos] - (float(action.value) if action.action == "reweight" else 0.0)
                removed.add(id(action))
                dropped[c] = dropped.get(c, 0) + 1
        if not removed:  # nothing of this round took mass from the short classes (earlier rounds did)
            return new_state, applied, dropped
        actions = [a for a in actions if id(a) not in removed]
    new_state, applied = apply_data_actions(state, actions)
    return new_state, applied, dropped
