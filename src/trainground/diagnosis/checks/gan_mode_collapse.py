"""Mode collapse: the generator covers few classes of the real data and its samples look alike."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import fmt, onset_of_final_streak
from trainground.diagnosis.checks._gan import epoch_columns
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "gan_mode_collapse"
# All a priori, none fitted to runs:
# - coverage (share of classes the real-data classifier finds at >= 1/4 of their uniform share,
#   metrics/coverage.py) at or below one half: half of the modes are missing.
COVERAGE_COLLAPSED = 0.5
# - coverage fallen by this much from its best of the run: three classes in ten lost since then
#   (a generator that once covered them and drops them is collapsing, whatever the level).
COVERAGE_DROP = 0.3
# - intra-batch SSIM of the generated samples above the real data's own level by a tenth of
#   SSIM's range [-1, 1]: random pairs share far more structure than real pairs do (duplicates).
SSIM_EXCESS = 0.2


@register_check(NAME, kind="training", requires=("epochs",))
def gan_mode_collapse(evidence: Evidence) -> CheckResult:
    """The generator's mode coverage fell (or is low) while its samples' mutual SSIM rose."""
    result = CheckResult(NAME)
    frame = epoch_columns(evidence, "gen_mode_coverage", "gen_ssim_intra")
    if frame is None or frame.empty:
        return result
    coverage = frame["gen_mode_coverage"].to_numpy()
    ssim = frame["gen_ssim_intra"].to_numpy()
    real = float(evidence.epochs["real_ssim_intra"].dropna().iloc[-1]) if "real_ssim_intra" in evidence.epochs \
        and evidence.epochs["real_ssim_intra"].notna().any() else float("nan")
    low = coverage <= COVERAGE_COLLAPSED
    dropped = np.maximum.accumulate(coverage) - coverage >= COVERAGE_DROP - 1e-9
    similar = (ssim - real >= SSIM_EXCESS) if np.isfinite(real) else np.zeros_like(low)
    signals = {"low coverage": bool(low[-1]), "coverage fell": bool(dropped[-1]), "samples alike": bool(similar[-1])}
    if not any(signals.values()):
        return result
    both = (low[-1] or dropped[-1]) and similar[-1]
    steps = frame["step"].to_numpy()
    onset = onset_of_final_streak(steps, low | dropped | similar)
    result.findings.append(Finding(
        check=NAME, severity=Severity.ERROR if both else Severity.WARNING, subject="model:generator",
        message=(f"the generator covers {fmt(100 * coverage[-1])} % of the classes (best {fmt(100 * coverage.max())} %), "
                 f"its samples' mutual SSIM is {fmt(ssim[-1])} (real data: {fmt(real)}): "
                 + ", ".join(k for k, v in signals.items() if v)),
        evidence={"mode_coverage": float(coverage[-1]), "best_coverage": float(coverage.max()),
                  "ssim_intra": float(ssim[-1]), "real_ssim_intra": real, "coverage_threshold": COVERAGE_COLLAPSED,
                  "coverage_drop": COVERAGE_DROP, "ssim_excess": SSIM_EXCESS, "signals": signals,
                  "coverage_by_epoch": [float(c) for c in coverage]},
        suggestion="use the multi-resolution discriminator, lower the discriminator's lr or raise the generator's "
                   "n_critic ratio, use the hinge loss, or stop at the epoch of best coverage (its checkpoint)",
        step=onset,
    ))
    return result
