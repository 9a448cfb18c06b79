"""Router entropy collapse: a mixture-of-experts gate that has become one-hot for every token."""

from __future__ import annotations

from trainground.diagnosis.checks._common import fmt, onset_of_final_streak
from trainground.diagnosis.checks._routing import router_windows
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "router_entropy_collapse"
# Mean per-token gate entropy over ln E. A gate that puts 0.99 on one expert and spreads
# the rest evenly has a normalised entropy of 0.048 (E = 4) to 0.023 (E = 64); there the
# softmax derivative p(1 - p) is under 0.01, so the router has stopped learning and no
# longer explores. A priori bar: 0.05.
MIN_ENTROPY = 0.05


@register_check(NAME, kind="training", requires=("layers",))
def router_entropy_collapse(evidence: Evidence) -> CheckResult:
    """Mixture-of-experts layers whose gate gives nearly all its probability to one expert per token."""
    result = CheckResult(NAME)
    for router in router_windows(evidence.layers):
        entropy = router.stats["router_entropy"].to_numpy(dtype=float)
        if entropy[-1] >= MIN_ENTROPY:
            continue
        saturated = float(router.stats["router_saturated_fraction"].iloc[-1])
        result.findings.append(Finding(
            check=NAME, severity=Severity.WARNING, subject=f"layer:{router.name}",
            message=(f"the gate of {router.name} has collapsed to one expert per token: normalised entropy "
                     f"{fmt(entropy[-1])} (bar {MIN_ENTROPY}), {fmt(100 * saturated)} % of tokens with a gate "
                     f"probability >= 0.99"),
            evidence={"entropy": float(entropy[-1]), "initial_entropy": float(entropy[0]), "threshold": MIN_ENTROPY,
                      "saturated_fraction": saturated},
            suggestion=("keep noisy_gating on, lower the gate's learning rate, add a router z-loss or a softmax "
                        "temperature, or raise balance_weight; a saturated softmax passes almost no gradient, "
                        "so the routing is frozen where it is"),
            step=onset_of_final_streak(router.steps, entropy < MIN_ENTROPY),
        ))
    return result
