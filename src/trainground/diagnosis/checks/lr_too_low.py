"""Learning rate too low: steps far smaller than the weights, and a loss still far from trained."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    before_divergence,
    block_means,
    first_sustained,
    fmt,
    initial_loss,
)
from trainground.diagnosis.checks._update_ratio import typical_update_ratio
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "lr_too_low"
# A priori: an update-to-weight ratio 10x below the healthy ~1e-3 (Karpathy, CS231n) while
# the loss is still above half of its starting value (a converged model legitimately takes
# small steps, so the loss condition guards it).
LOW_RATIO = 1e-4
HIGH_LOSS = 0.5
# Or: the loss is still high but falls steadily: >= 80 % of the block-to-block moves over
# the last half are downwards (a run that is still learning and was cut short by its pace).
STEADY_SHARE = 0.8


@register_check(NAME, kind="training", requires=("layers", "steps"))
def lr_too_low(evidence: Evidence) -> CheckResult:
    """Update/weight ratio < 1e-4, or a steady but slow fall, while the loss is above half its start."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    steps, ratio = typical_update_ratio(evidence)
    ends, means = block_means(evidence.steps)
    start = initial_loss(evidence.steps)
    if ratio.size < 3 or means.size < 6 or not np.isfinite(start):
        return result
    level = float(means[-2:].mean())
    if not (HIGH_LOSS * start < level <= start):
        return result
    recent = float(np.median(ratio[ratio.size // 2 :]))
    tail = np.diff(means[means.size // 2 :])
    steady = float((tail < 0).mean()) if tail.size else 0.0
    lr = float(evidence.steps["lr"].iloc[-1]) if "lr" in evidence.steps else None
    if recent < LOW_RATIO:
        onset = first_sustained(steps, ratio < LOW_RATIO) or int(steps[0])
        why = f"each step changes the weights by only {fmt(recent)} of their norm"
    elif steady >= STEADY_SHARE:
        onset = int(ends[means.size // 2])
        why = f"the loss still falls steadily ({fmt(100 * steady)} % of moves down) but slowly"
    else:
        return result
    result.findings.append(Finding(
        check=NAME, severity=Severity.WARNING, subject="run",
        message=f"learning rate too low: {why}; the loss is {fmt(level)}, {fmt(100 * level / start)} % of its start",
        evidence={"median_update_ratio": recent, "threshold": LOW_RATIO, "loss": level, "initial_loss": start,
                  "steady_share": steady, "lr": lr},
        suggestion=(f"raise the learning rate {'(now ' + fmt(lr) + ') ' if lr else ''}by 10x, or choose it with "
                    "`trainground lr-find DATA` (an lr range test); or train for more epochs"),
        step=onset,
    ))
    return result
