"""Overfitting: the validation loss rises from its minimum while the train/validation gap grows."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import before_divergence, fmt
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "overfitting"
# A priori: the validation loss at least doubled from its best epoch and the gap between
# validation and training loss at least doubled too: warning. A rise of 25 % with a
# growing gap is worth knowing (info): early stopping would have helped a little.
WARNING_RISE = 2.0
INFO_RISE = 1.25
GAP_GROWTH = 2.0


@register_check(NAME, kind="training", requires=("epochs",))
def overfitting(evidence: Evidence) -> CheckResult:
    """Validation loss >= 2x its minimum with the train/validation gap >= 2x what it was then."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    epochs = evidence.epochs
    if epochs is None or "val_loss" not in epochs or "train_loss" not in epochs or len(epochs) < 3:
        return result
    val = epochs["val_loss"].astype(float).to_numpy()
    train = epochs["train_loss"].astype(float).to_numpy()
    if not np.isfinite(val).all() or not np.isfinite(train).all():
        return result
    best = int(np.argmin(val))
    rise = val[-1] / max(val[best], 1e-12)
    gap_best, gap_end = val[best] - train[best], val[-1] - train[-1]
    gap_growth = gap_end / max(gap_best, 1e-12) if gap_best > 0 else (np.inf if gap_end > 0 else 0.0)
    if best == len(val) - 1 or rise < INFO_RISE or gap_growth < GAP_GROWTH:
        return result
    severity = Severity.WARNING if rise >= WARNING_RISE else Severity.INFO
    # Onset: the first epoch after the best whose validation loss passed the threshold for good.
    threshold = (WARNING_RISE if severity is Severity.WARNING else INFO_RISE) * val[best]
    above = val >= threshold
    i = len(val) - 1
    while i > best + 1 and above[i - 1]:
        i -= 1
    best_step = int(epochs["step"].iloc[best]) if "step" in epochs else None
    numbers = {"best_epoch": best, "best_val_loss": float(val[best]), "final_val_loss": float(val[-1]),
               "val_loss_rise": float(rise), "gap_at_best": float(gap_best), "gap_at_end": float(gap_end),
               "rise_threshold": WARNING_RISE}
    if "val_accuracy" in epochs:
        acc = epochs["val_accuracy"].astype(float).to_numpy()
        numbers.update(best_val_accuracy=float(acc[best]), final_val_accuracy=float(acc[-1]))
    result.findings.append(Finding(
        check=NAME, severity=severity, subject="run",
        message=(f"overfitting: validation loss rose {fmt(rise)}x from its minimum {fmt(float(val[best]))} at "
                 f"epoch {best} while the train/validation gap grew from {fmt(float(gap_best))} to {fmt(float(gap_end))}"),
        evidence=numbers,
        suggestion=(f"stop early (around step {best_step}), add weight decay or dropout, augment the data, "
                    "or get more training data"),
        step=int(epochs["step"].iloc[i]) if "step" in epochs else None,
    ))
    return result
