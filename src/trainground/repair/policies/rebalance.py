"""Rebalance: on a class-imbalance finding, weight the loss by inverse class frequency."""

from __future__ import annotations

import numpy as np

from trainground.losses import class_weights
from trainground.repair.actions import Action
from trainground.repair.policy import RepairContext, register_policy


@register_policy("rebalance", kind="data")
def rebalance(context: RepairContext) -> list[Action]:
    """Class weights ``1 / n_c`` (mean 1) when the class-imbalance check found a rare class.

    Inverse-frequency weights make every class contribute equally to the expected loss,
    which is the unbiased correction for a training prior that differs from a uniform
    target prior; they are scaled to mean 1 (``losses.class_weights``) so a balanced
    dataset keeps weights of 1 and the learning rate keeps its meaning.

    References:
        King & Zeng, "Logistic Regression in Rare Events Data", Political Analysis 2001;
        Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
    """
    findings = context.findings_of("class_imbalance")
    if not findings:
        return []
    data = context.data
    counts = np.bincount(data.labels.numpy(), minlength=data.num_classes)
    weights = class_weights(counts, scheme="inverse").numpy().astype(float)
    rare = [f.subject.removeprefix("class:") for f in findings]
    return [Action(
        "class_weights", "rebalance", value=[round(float(w), 6) for w in weights],
        reason=f"rare classes {', '.join(rare)}: loss weighted by inverse class frequency",
        evidence={"counts": counts.tolist(), "findings": len(findings)},
    )]
