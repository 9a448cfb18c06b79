"""Plateau: the training loss stopped falling while still far from a trained model."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    before_divergence,
    block_means,
    fmt,
    initial_loss,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "plateau"
# A priori: over the last third of the run the loss fell by less than 1 % of its level,
# while it is still above half of where it started (the model has learnt little).
MIN_IMPROVEMENT = 0.01
HIGH_LOSS = 0.5
TAIL = 1 / 3
# A loss above where it started is divergence, the business of other checks.
DIVERGED = 1.05


@register_check(NAME, kind="training", requires=("steps",))
def plateau(evidence: Evidence) -> CheckResult:
    """Over the last third of the run the loss fell < 1 % while above half its starting value."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    ends, means = block_means(evidence.steps)
    start = initial_loss(evidence.steps)
    if means.size < 6 or not np.isfinite(start) or start <= 0:
        return result
    tail = means[int(np.floor(means.size * (1 - TAIL))) :]
    head_level, level = float(tail[:2].mean()), float(tail[-2:].mean())
    improvement = (head_level - level) / max(head_level, 1e-12)
    if not (improvement < MIN_IMPROVEMENT and HIGH_LOSS * start < level <= DIVERGED * start):
        return result
    # Onset: the first block from which the loss never again fell 1 % below it.
    onset_block = means.size - tail.size
    for i in range(means.size):
        if np.all(means[i:] >= means[i] * (1 - MIN_IMPROVEMENT)):
            onset_block = i
            break
    result.findings.append(Finding(
        check=NAME, severity=Severity.WARNING, subject="run",
        message=(f"the training loss has plateaued at {fmt(level)} ({fmt(100 * level / start)} % of its starting "
                 f"value {fmt(start)}); it fell {fmt(100 * improvement)} % over the last third of the run"),
        evidence={"loss": level, "initial_loss": start, "tail_improvement": improvement,
                  "improvement_threshold": MIN_IMPROVEMENT, "high_loss_share": HIGH_LOSS},
        suggestion="raise the learning rate (`trainground lr-find DATA` runs an lr range test), check that labels match the inputs, "
                   "standardise the features, or use a larger model",
        step=int(ends[onset_block]),
    ))
    return result
