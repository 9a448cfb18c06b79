"""Drop duplicates: among exact copies of one input with conflicting labels, drop the outvoted copies."""

from __future__ import annotations

import numpy as np

from trainground.repair.actions import Action
from trainground.repair.policy import RepairContext, register_policy


def conflicting_copies(features: np.ndarray, labels: np.ndarray, exact: np.ndarray,
                       probs: np.ndarray | None) -> list[tuple[np.ndarray, int | None]]:
    """Groups of exact duplicates (positions) whose labels differ, each with the label to keep.

    The label kept is the one most copies carry; a tie is broken by the mean
    probability of the tied labels over the group (the model's view), and with no
    probabilities no label is kept (None: every copy is dropped, none can be trusted).
    """
    rows = np.flatnonzero(exact)
    groups: dict[bytes, list[int]] = {}
    flat = features.reshape(len(features), -1)
    for row in rows:
        groups.setdefault(np.ascontiguousarray(flat[row]).tobytes(), []).append(int(row))
    out = []
    for members in groups.values():
        members_arr = np.asarray(members)
        values, counts = np.unique(labels[members_arr], return_counts=True)
        if len(members_arr) < 2 or len(values) < 2:
            continue
        tied = values[counts == counts.max()]
        if len(tied) == 1:
            keep: int | None = int(tied[0])
        elif probs is not None:
            keep = int(tied[np.argmax(probs[members_arr][:, tied].mean(axis=0))])
        else:
            keep = None
        out.append((members_arr, keep))
    return out


@register_policy("drop_duplicates", kind="data", requires=("samples",))
def drop_duplicates(context: RepairContext) -> list[Action]:
    """Drop exact duplicates whose label disagrees with the label most of their copies carry.

    The same input cannot have two true labels, so at least one copy is wrong; keeping
    both teaches the model a contradiction. Reads the near-duplicate check (score 0 =
    exact duplicate) and only groups those rows.
    """
    table = context.table
    if table is None or "near_duplicate_score" not in table or len(table) != len(context.data):
        return []
    data = context.data
    labels = data.labels.numpy()
    probs = None if context.pred_probs is None else np.asarray(context.pred_probs)
    exact = table["near_duplicate_score"].to_numpy(dtype=float) == 0.0
    decode = data.encoder.decode
    actions = []
    for members, keep in conflicting_copies(data.features.numpy(), labels, exact, probs):
        copies = data.index.numpy()[members].tolist()
        for row in members:
            if keep is not None and labels[row] == keep:
                continue
            kept = "no label (a tie)" if keep is None else f"label {decode([keep])[0]!r}"
            actions.append(Action(
                "drop_duplicate", "drop_duplicates", target=int(data.index[row]), score=0.0,
                reason=f"exact duplicate of rows {[c for c in copies if c != int(data.index[row])]} with label "
                f"{decode([int(labels[row])])[0]!r}; the copies support {kept}",
                evidence={"copies": copies, "old": int(labels[row]), "kept_label": keep},
            ))
    return actions
