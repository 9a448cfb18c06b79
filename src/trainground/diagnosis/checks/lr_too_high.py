"""Learning rate too high: each step rewrites a large share of the weights, or the loss diverged."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    block_means,
    first_sustained,
    fmt,
    initial_loss,
    onset_of_final_streak,
)
from trainground.diagnosis.checks._update_ratio import typical_update_ratio
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "lr_too_high"
# Update-to-weight ratio ||delta w|| / ||w|| per step; ~1e-3 is the usual healthy scale
# (Karpathy, CS231n). A priori: 100x that (each step rewrites 10 % of the weights) is too
# high; 10x that together with a loss that ended above where it started (or went NaN)
# means the run diverged because of the step size.
HIGH_RATIO = 1e-1
DIVERGING_RATIO = 1e-2
# "Ended above where it started": by more than 5 %, so a run stuck at chance level (whose
# loss wobbles around its start) is a plateau, not a divergence. Same tolerance as plateau.
DIVERGED = 1.05
# Or it un-learned: the loss had fallen below half of its start (the "far from trained" line
# of lr_too_low and plateau) and ended back within that 5 % of where it started: whatever
# it learned was lost (an lr jump that throws a trained model back to chance level). The
# start is the loss of the initial weights (``initial_loss``), so a run that merely ends a
# little above its first, already-trained steps is neither.
LEARNED = 0.5


@register_check(NAME, kind="training", requires=("layers", "steps"))
def lr_too_high(evidence: Evidence) -> CheckResult:
    """Median update-to-weight ratio > 0.1, or > 0.01 with a loss that diverged."""
    result = CheckResult(NAME)
    steps, ratio = typical_update_ratio(evidence)
    if ratio.size < 3:
        return result
    recent = float(np.median(ratio[ratio.size // 2 :]))
    start = initial_loss(evidence.steps)
    loss = evidence.steps["loss"].astype(float).to_numpy()
    ends, means = block_means(evidence.steps)
    nonfinite = ~np.isfinite(loss)
    final = float(means[-2:].mean()) if means.size >= 2 else float("nan")
    relapsed = bool(np.isfinite(final) and means.size and float(means.min()) < LEARNED * start
                    and final >= start / DIVERGED)
    diverged = bool(nonfinite.any()) or (np.isfinite(final) and final > DIVERGED * start) or relapsed
    peak = float(np.max(ratio))
    lr = float(evidence.steps["lr"].iloc[-1]) if "lr" in evidence.steps else None
    numbers = {"median_update_ratio": recent, "max_update_ratio": peak, "threshold": HIGH_RATIO,
               "loss_diverged": bool(diverged), "initial_loss": start, "final_loss": final, "lr": lr}
    if recent > HIGH_RATIO:
        onset = first_sustained(steps, ratio > HIGH_RATIO) or int(steps[ratio.size // 2])
        severity = Severity.ERROR if diverged else Severity.WARNING
        message = f"each step changes the weights by {fmt(100 * recent)} % (median update/weight ratio)"
    elif diverged and peak > DIVERGING_RATIO:
        # Dated by the loss: the first non-finite step, or the first block of steps whose mean
        # loss rose above the start for good.
        if nonfinite.any():
            onset = int(evidence.steps["step"].to_numpy()[int(np.argmax(nonfinite))])
        else:
            high = means >= start / DIVERGED if relapsed else means > DIVERGED * start
            onset = onset_of_final_streak(ends, high) or int(ends[-1])
        severity = Severity.ERROR
        lost = " after falling to " + fmt(float(means.min())) if relapsed and not nonfinite.any() else ""
        message = (f"the loss diverged ({'non-finite' if nonfinite.any() else fmt(final)} vs {fmt(start)} at the start"
                   f"{lost}) with steps of up to {fmt(100 * peak)} % of the weights")
    else:
        return result
    result.findings.append(Finding(
        check=NAME, severity=severity, subject="run", message=f"learning rate too high: {message}",
        evidence=numbers,
        suggestion=(f"lower the learning rate {'(now ' + fmt(lr) + ') ' if lr else ''}by 10x (`trainground lr-find DATA` "
                    "runs an lr range test), or use warm-up and gradient clipping (trainground Guard)"),
        step=onset,
    ))
    return result
