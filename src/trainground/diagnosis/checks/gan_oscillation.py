"""Oscillation between the players: both losses zig-zag with a large amplitude, in opposite directions."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import block_means, fmt
from trainground.diagnosis.checks._gan import DISCRIMINATOR, GENERATOR, player_steps
from trainground.diagnosis.checks.oscillating_loss import WINDOW, oscillating
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "gan_oscillation"
# The zig-zag rules of oscillating_loss (40 % of block moves up, path >= 3x the net move, the
# typical move >= 10 % of the level and >= 2x the sampling noise), with the level a player's mean
# |loss| over the run (GAN losses do not start high and fall; the hinge generator's is negative).
# A priori, for "between the players": their block-to-block moves are strongly opposed (one gains
# what the other loses), a correlation of -0.5 or below over the last WINDOW moves.
ANTI_CORRELATION = -0.5


@register_check(NAME, kind="training")
def gan_oscillation(evidence: Evidence) -> CheckResult:
    """Both players' losses swing widely in opposite directions instead of settling."""
    result = CheckResult(NAME)
    series = {}
    for name in (DISCRIMINATOR, GENERATOR):
        steps = player_steps(evidence, name)
        if steps is None:
            return result
        ends, means, noise = block_means(steps, with_noise=True)
        if means.size < WINDOW + 1:
            return result
        level = float(np.mean(np.abs(means)))
        recent = means[-WINDOW - 1:]
        series[name] = (recent, level, bool(level > 0 and oscillating(recent, level, float(np.mean(noise[-WINDOW - 1:])))))
    k = min(len(series[DISCRIMINATOR][0]), len(series[GENERATOR][0]))
    dd, dg = np.diff(series[DISCRIMINATOR][0][-k:]), np.diff(series[GENERATOR][0][-k:])
    corr = float(np.corrcoef(dd, dg)[0, 1]) if dd.std() > 0 and dg.std() > 0 else 0.0
    if not (series[DISCRIMINATOR][2] and series[GENERATOR][2] and corr <= ANTI_CORRELATION):
        return result
    result.findings.append(Finding(
        check=NAME, severity=Severity.WARNING, subject="run",
        message=(f"the players oscillate: both losses zig-zag (mean block move {fmt(float(np.abs(dd).mean()))} and "
                 f"{fmt(float(np.abs(dg).mean()))}) in opposite directions (correlation {fmt(corr)})"),
        evidence={"correlation": corr, "threshold": ANTI_CORRELATION,
                  "discriminator_level": series[DISCRIMINATOR][1], "generator_level": series[GENERATOR][1]},
        suggestion="lower both learning rates (or the discriminator's), use Adam with beta1 0.5 or 0, or average the "
                   "generator's weights (EMA) for sampling",
    ))
    return result
