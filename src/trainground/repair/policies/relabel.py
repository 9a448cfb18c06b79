"""Relabel: a flagged sample whose suggested label has strong evidence gets that label."""

from __future__ import annotations

import numpy as np

from trainground.repair.actions import Action
from trainground.repair.policies._evidence import STRONG_EVIDENCE, label_evidence
from trainground.repair.policy import RepairContext, register_policy


@register_policy("relabel", kind="data", requires=("samples", "validation"))
def relabel(context: RepairContext) -> list[Action]:
    """Relabel flagged samples to the suggested label when it holds the majority of the probability.

    A sample is relabelled when confident learning flags its label and the early-learning
    probability of the suggested class is at least one half (and that class is the most
    probable one); see ``_evidence`` for why. The action's score is the probability of
    the label it replaces (low = the old label was clearly wrong).

    Only where the model is competent (``repair.competence``): never when its validation
    skill over the majority-class baseline is below one half, and never into a class whose
    validation precision is not above one half. The loop reports why it declined.
    """
    evidence = label_evidence(context)
    if evidence is None or context.competence is None:
        return []
    allowed = context.competence.may_relabel_into()
    decode = context.data.encoder.decode
    p_new = evidence.suggested_prob()
    actions = []
    for row in np.flatnonzero(evidence.strong() & allowed[evidence.suggested]):
        old, new = int(evidence.given[row]), int(evidence.suggested[row])
        actions.append(Action(
            "relabel", "relabel", target=int(evidence.index[row]), value=new, score=float(evidence.label_score[row]),
            reason=f"label {decode([old])[0]!r} flagged as wrong; {decode([new])[0]!r} has probability "
            f"{p_new[row]:.2f} >= {STRONG_EVIDENCE}",
            evidence={"old": old, "new": new, "p_new": float(p_new[row]), "p_old": float(evidence.label_score[row])},
        ))
    return actions
