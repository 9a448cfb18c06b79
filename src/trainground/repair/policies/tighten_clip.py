"""Tighten gradient clipping on exploding gradients or loss spikes."""

from __future__ import annotations

from typing import Any

from trainground.gradients import GuardConfig
from trainground.repair.actions import Action
from trainground.repair.policies._training import acting
from trainground.repair.policy import RepairContext, register_policy

NAME = "tighten_clip"
TRIGGERS = ("exploding_gradients", "loss_spikes")
# A Guard that already holds the run's step back on a flat loss is not tightened further: a
# tighter clip would deepen the stall (the loosen_clip policy acts on it instead).
CONFLICTS = ("guard_stall",)
# The Guard's protection a run can have switched off: spike skip, a gradient clip and the
# secant trust region, restored at the defaults (gradients/config.py, chosen on benchmark C),
# not on any repair case. With all of them on, the clip gets harder: the default clip cuts
# outliers only (ZClip), so the first step adds AutoClip's 10th percentile of the norm history
# (its paper's choice), and the next ones halve that percentile, down to the 1st.
DEFAULTS = GuardConfig()
AUTOCLIP_PERCENTILE = 10.0
MIN_PERCENTILE = 1.0


def tighter(guard: Any) -> dict[str, Any]:
    """The Guard options to change: the default protection where it is off, else a harder clip."""
    change: dict[str, Any] = {}
    if getattr(guard, "spike_z", None) is None:
        change["spike_z"] = DEFAULTS.spike_z
    if all(getattr(guard, k, None) is None for k in ("percentile", "zscore", "max_norm")):
        change["zscore"] = DEFAULTS.zscore
    if not getattr(guard, "trust_region", False):
        change["trust_region"] = True
    if change:
        return change
    percentile = getattr(guard, "percentile", None)
    if percentile is None:
        return {"percentile": AUTOCLIP_PERCENTILE}
    if percentile > MIN_PERCENTILE:
        return {"percentile": max(MIN_PERCENTILE, percentile / 2)}
    return {}


@register_policy(NAME, kind="training")
def tighten_clip(context: RepairContext) -> list[Action]:
    """Switch on the Guard's clipping/spike skip, or make its clip harder, on exploding gradients or spikes."""
    found = [f for check in TRIGGERS for f in acting(context, check)]
    if not found or any(acting(context, c) for c in CONFLICTS):
        return []
    guard = getattr(context.config, "guard", None) or DEFAULTS
    change = tighter(guard)
    if not change:
        return []  # already at the tightest clip this policy sets; other policies must act
    before = {k: getattr(guard, k, None) for k in change}
    checks = sorted({f.check for f in found})
    evidence: dict[str, Any] = {"checks": checks, "before": before}
    for f in found:
        for key in ("median_relative_gradient", "max_grad_norm", "initial_grad_norm", "spikes", "unrecovered"):
            if key in f.evidence:
                evidence[key] = f.evidence[key]
    what = ", ".join(f"{k} {before[k]} -> {v}" for k, v in change.items())
    return [Action("tighten_clip", NAME, f"{' and '.join(checks)}: Guard {what}", value=change, evidence=evidence)]
