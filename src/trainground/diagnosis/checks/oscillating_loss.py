"""Oscillating loss: the training loss swings up and down with a large amplitude instead of falling."""

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

NAME = "oscillating_loss"
# Read on block means of the step losses (about 40 blocks of >= 10 steps, so mini-batch
# noise is averaged down), over sliding windows of WINDOW blocks. All a priori:
WINDOW = 10
# at least 40 % of the block-to-block moves go up (a falling loss has few),
UP_SHARE = 0.4
# the path is at least 3x the net displacement (zig-zag rather than trend),
ZIGZAG = 3.0
# and the typical move is at least 10 % of the starting loss (not noise at convergence),
AMPLITUDE = 0.1
# and at least twice what sampling alone gives. A block mean of m step losses has the
# standard error s / sqrt(m) (s: the spread of the step losses within the blocks, which
# already holds the batch size: small batches spread more); for independent block means
# the expected |move| is 2 s / sqrt(pi m) (the mean absolute difference of two normal
# draws). Pure noise zig-zags by construction (half the moves go up, the path is long), so
# only the amplitude can tell oscillation from sampling noise, and it must be well above it.
NOISE_MULTIPLE = 2.0


def oscillating(means: np.ndarray, start: float, noise: float = 0.0) -> bool:
    """Whether the block ``means`` zig-zag by the rules above; ``noise`` is the expected
    |move| of two block means from sampling alone (0: not known)."""
    d = np.diff(means)
    if d.size == 0:
        return False
    net = abs(float(means[-1] - means[0]))
    path = float(np.abs(d).sum())
    move = float(np.abs(d).mean())
    return bool((d > 0).mean() >= UP_SHARE and path >= ZIGZAG * max(net, 1e-12)
                and move >= AMPLITUDE * start and move >= NOISE_MULTIPLE * noise)


@register_check(NAME, kind="training", requires=("steps",))
def oscillating_loss(evidence: Evidence) -> CheckResult:
    """The training loss zig-zags with an amplitude of >= 10 % of its starting value."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    ends, means, noise = block_means(evidence.steps, with_noise=True)
    start = initial_loss(evidence.steps)
    if means.size < WINDOW + 1 or not np.isfinite(start) or start <= 0:
        return result
    flags = np.array([oscillating(means[i - WINDOW : i + 1], start, float(np.mean(noise[i - WINDOW : i + 1])))
                      for i in range(WINDOW, means.size)])
    if not flags[-1]:
        return result
    i = len(flags) - 1
    while i > 0 and flags[i - 1]:
        i -= 1
    window = means[-WINDOW - 1 :]
    d = np.diff(window)
    result.findings.append(Finding(
        check=NAME, severity=Severity.WARNING, subject="run",
        message=(f"the training loss oscillates: block means move by {fmt(float(np.abs(d).mean()))} on average "
                 f"({fmt(100 * float(np.abs(d).mean()) / start)} % of the starting loss), {fmt(100 * float((d > 0).mean()))} % "
                 "of moves upwards"),
        evidence={"mean_move": float(np.abs(d).mean()), "initial_loss": start, "up_share": float((d > 0).mean()),
                  "sampling_noise_move": float(np.mean(noise[-WINDOW - 1 :])),
                  "recent_block_means": [float(m) for m in window]},
        suggestion="lower the learning rate (e.g. by 3-10x) or add a decay schedule; with SGD, lower the momentum",
        step=int(ends[i + WINDOW - 1]) if i + WINDOW - 1 < ends.size else int(ends[-1]),
    ))
    return result
