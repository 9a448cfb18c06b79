"""Discriminator overpowering: its loss is near zero while the generator's keeps growing."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import fmt, onset_of_final_streak
from trainground.diagnosis.checks._gan import DISCRIMINATOR, GENERATOR, epoch_columns
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "gan_discriminator_overpowering"
# A priori: at chance the discriminator's loss is 2 (hinge, logits 0) or 2 log 2 = 1.39
# (non-saturating); below 0.05, under 4 % of either, it separates real from fake with a margin
# on nearly every sample, so the generator's gradient carries little but "everything is fake".
NEAR_ZERO = 0.05
# Epochs the state must last at the end of the run (one epoch can be a transient win);
# from ERROR_EPOCHS on it is an error.
WARNING_EPOCHS = 2
ERROR_EPOCHS = 3


@register_check(NAME, kind="training", requires=("epochs",))
def gan_discriminator_overpowering(evidence: Evidence) -> CheckResult:
    """The discriminator's loss stays near zero while the generator's loss grows."""
    result = CheckResult(NAME)
    d_col, g_col = f"{DISCRIMINATOR}_loss", f"{GENERATOR}_loss"
    frame = epoch_columns(evidence, d_col, g_col)
    if frame is None or frame.empty:
        return result
    d, g = frame[d_col].to_numpy(), frame[g_col].to_numpy()
    near = d < NEAR_ZERO
    onset = onset_of_final_streak(frame["step"].to_numpy(), near)
    if onset is None:
        return result
    start = int(np.flatnonzero(frame["step"].to_numpy() == onset)[0])
    streak = len(d) - start
    # "grows": the generator's loss at the end above where it stood when the streak began
    # (or, for a streak from the first epoch, above its first value).
    growing = g[-1] > g[max(start - 1, 0)]
    if streak < WARNING_EPOCHS or not growing:
        return result
    result.findings.append(Finding(
        check=NAME, severity=Severity.ERROR if streak >= ERROR_EPOCHS else Severity.WARNING,
        subject="model:discriminator",
        message=(f"the discriminator's loss has stayed below {NEAR_ZERO} for the last {streak} epochs "
                 f"(now {fmt(d[-1])}) while the generator's rose from {fmt(g[max(start - 1, 0)])} to {fmt(g[-1])}"),
        evidence={"discriminator_loss": float(d[-1]), "generator_loss": float(g[-1]), "epochs": streak,
                  "threshold": NEAR_ZERO, "generator_loss_at_onset": float(g[max(start - 1, 0)])},
        suggestion="lower the discriminator's lr (or raise the generator's), let the generator act more often "
                   "(discriminator `every`), use a multi-resolution discriminator or the hinge loss",
        step=onset,
    ))
    return result
