"""Expert collapse: a mixture-of-experts router sends most tokens to a few experts."""

from __future__ import annotations

import math

import numpy as np

from trainground.diagnosis.checks._common import fmt
from trainground.diagnosis.checks._routing import SUGGESTION, router_windows
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "expert_collapse"
# "Few" experts: a quarter of them (at least k, as each token takes k distinct experts). An
# even split gives them E/4 / E = 25 % of the assignments. A priori: 80 % to that quarter
# leaves the other three quarters under a fifth of their fair share each on average (most
# of the layer's capacity idle) - a warning; 95 % means the layer is in effect a dense
# layer of those few experts - an error.
FEW_SHARE = 0.25
WARNING_SHARE = 0.8
ERROR_SHARE = 0.95


@register_check(NAME, kind="training", requires=("layers",))
def expert_collapse(evidence: Evidence) -> CheckResult:
    """Mixture-of-experts layers whose router sends most tokens to a few experts."""
    result = CheckResult(NAME)
    for router in router_windows(evidence.layers):
        few = max(router.top_k, math.ceil(FEW_SHARE * router.experts))
        if few >= router.experts or not router.enough()[-1]:
            continue
        share = float(np.sort(router.load[-1])[::-1][:few].sum())
        if share < WARNING_SHARE:
            continue
        busiest = np.argsort(router.load[-1])[::-1][:few].tolist()
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if share >= ERROR_SHARE else Severity.WARNING,
            subject=f"layer:{router.name}",
            message=(f"the router of {router.name} sent {fmt(100 * share)} % of its assignments to {few} of "
                     f"{router.experts} experts ({', '.join(map(str, busiest))}) in the last window"),
            evidence={"top_share": share, "few_experts": few, "experts": router.experts, "busiest": busiest,
                      "threshold": WARNING_SHARE, "balance": float(router.stats["router_balance"].iloc[-1])},
            suggestion=SUGGESTION, step=int(router.steps[-1]),
        ))
    return result
