"""Reweight: an unflagged sample the model doubts counts less, by the likelihood of its label."""

from __future__ import annotations

import numpy as np

from trainground.repair.actions import Action
from trainground.repair.policies._evidence import label_evidence
from trainground.repair.policy import RepairContext, register_policy


@register_policy("reweight", kind="data", requires=("samples",))
def reweight(context: RepairContext) -> list[Action]:
    """Down-weight unflagged samples whose given label is not the early-learning favourite.

    Weight = ``p(given) / max_c p(c)`` (the likelihood ratio of the given label against
    the most probable class), in (0, 1): confident learning did not flag the sample, so
    it stays, but it counts in proportion to how well its label is supported. The score is
    that weight.

    References:
        Liu & Tao, "Classification with Noisy Labels by Importance Reweighting", TPAMI 2016.
    """
    evidence = label_evidence(context)
    if evidence is None or evidence.probs is None:
        return []
    weight = evidence.uncertain_weight()
    decode = context.data.encoder.decode
    favourite = evidence.probs.argmax(axis=1)
    actions = []
    for row in np.flatnonzero(weight < 1.0):
        old = int(evidence.given[row])
        w = float(weight[row])
        actions.append(Action(
            "reweight", "reweight", target=int(evidence.index[row]), value=w, score=w,
            reason=f"weight {w:.2f}: label {decode([old])[0]!r} not flagged, but the model prefers "
            f"{decode([int(favourite[row])])[0]!r} (probability ratio {w:.2f})",
            evidence={"old": old, "favourite": int(favourite[row])},
        ))
    return actions
