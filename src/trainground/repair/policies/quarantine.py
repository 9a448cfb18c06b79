"""Quarantine: a sample whose label is wrong but no other label is trustworthy leaves training."""

from __future__ import annotations

import numpy as np

from trainground.repair.actions import Action
from trainground.repair.policies._evidence import STRONG_EVIDENCE, label_evidence
from trainground.repair.policy import RepairContext, register_policy


@register_policy("quarantine", kind="data", requires=("samples",))
def quarantine(context: RepairContext) -> list[Action]:
    """Quarantine flagged samples whose label is below chance and that are not relabelled.

    Confident learning flags the label and its estimated probability is below ``1 / K``
    (the evidence is against it), but no class reaches one half of the probability, so
    any replacement would be a guess: the sample is excluded
    from training and listed in ``quarantined.csv`` (never silently lost). Training on
    fewer, cleaner samples is the remedy of Confident Learning ("prune, then train").

    References:
        Northcutt, Jiang & Chuang, "Confident Learning", JAIR 2021.
    """
    evidence = label_evidence(context)
    if evidence is None:
        return []
    decode = context.data.encoder.decode
    p_best = evidence.suggested_prob()
    doubtful = evidence.wrong() & ~evidence.strong()
    actions = []
    for row in np.flatnonzero(doubtful):
        old = int(evidence.given[row])
        actions.append(Action(
            "quarantine", "quarantine", target=int(evidence.index[row]), score=float(evidence.label_score[row]),
            reason=f"label {decode([old])[0]!r} flagged as wrong, but no class reaches probability {STRONG_EVIDENCE} "
            f"(best {decode([int(evidence.suggested[row])])[0]!r}: {p_best[row]:.2f})",
            evidence={"old": old, "p_old": float(evidence.label_score[row]), "p_best": float(p_best[row])},
        ))
    return actions
