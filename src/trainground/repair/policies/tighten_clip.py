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
# The Guard's protection a run can have switched off: spike skip, the percentile clip and the
# secant trust region, restored at the defaults chosen on benchmark C (gradients/config.py),
# not on any repair case. With all three on, the percentile clip is halved (clip at a lower
# quantile of the norm history), down to the 1st percentile.
DEFAULTS = GuardConfig()
MIN_PERCENTILE = 1.0


def tighter(guard: Any) -> dict[str, Any]:
    """The Guard options to change: the default protection where it is off, else a halved percentile."""
    change: dict[str, Any] = {}
    if getattr(guard, "spike_z", None) is None:
        change["spike_z"] = DEFAULTS.spike_z
    if getattr(guard, "percentile", None) is None and getattr(guard, "max_norm", None) is None:
        change["percentile"] = DEFAULTS.percentile
    if not getattr(guard, "trust_region", False):
        change["trust_region"] = True
    if change:
        return change
    percentile = getattr(guard, "percentile", None)
    if percentile is not None and percentile > MIN_PERCENTILE:
        return {"percentile": max(MIN_PERCENTILE, percentile / 2)}
    return {}


@register_policy(NAME, kind="training")
def tighten_clip(context: RepairContext) -> list[Action]:
    """Switch on the Guard's clipping/spike skip, or halve its clip percentile, on exploding gradients or spikes."""
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
