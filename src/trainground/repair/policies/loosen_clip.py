"""Loosen the Guard where it holds the step back on a flat loss (a guard_stall finding)."""

from __future__ import annotations

from typing import Any

from trainground.repair.actions import Action
from trainground.repair.policies._training import acting
from trainground.repair.policy import RepairContext, register_policy

NAME = "loosen_clip"
TRIGGER = "guard_stall"
# Never loosen while the same round shows signs of too large a step (tighten_clip's triggers).
CONFLICTS = ("exploding_gradients", "loss_spikes")
# One decade per round for a fixed cap (the check's threshold is a cut of more than a decade);
# the percentile clip doubles, up to the median (it then clips at most half of the steps); the
# outlier clip (ZClip) doubles its z, up to 10 (beyond it, it clips nothing a spike skip would not).
MAX_NORM_FACTOR = 10.0
MAX_PERCENTILE = 50.0
MAX_ZSCORE = 10.0


def looser(guard: Any, held_by: str) -> dict[str, Any]:
    """The Guard options to change for the part that holds the step (empty when nothing is left to loosen)."""
    if held_by == "trust_region":
        return {"trust_region": False} if getattr(guard, "trust_region", False) else {}
    max_norm = getattr(guard, "max_norm", None)
    if max_norm is not None:
        return {"max_norm": float(max_norm) * MAX_NORM_FACTOR}
    percentile = getattr(guard, "percentile", None)
    if percentile is not None and percentile < MAX_PERCENTILE:
        return {"percentile": min(MAX_PERCENTILE, float(percentile) * 2)}
    zscore = getattr(guard, "zscore", None)
    if percentile is None and zscore is not None and zscore < MAX_ZSCORE:
        return {"zscore": min(MAX_ZSCORE, float(zscore) * 2)}
    return {}


@register_policy(NAME, kind="training")
def loosen_clip(context: RepairContext) -> list[Action]:
    """Raise the Guard's fixed cap, clip percentile or z, or switch its trust region off, on a guard_stall finding."""
    found = acting(context, TRIGGER)
    if not found or any(acting(context, c) for c in CONFLICTS):
        return []
    guard = getattr(context.config, "guard", None)
    if guard is None:
        return []
    f = found[0]
    held_by = str(f.evidence.get("held_by", "clip"))
    change = looser(guard, held_by)
    if not change:
        return []
    before = {k: getattr(guard, k, None) for k in change}
    evidence = {"held_by": held_by, "before": before,
                **{k: f.evidence[k] for k in ("median_step_share", "median_update_scale", "median_clip_ratio", "loss")
                   if k in f.evidence}}
    what = ", ".join(f"{k} {before[k]} -> {v}" for k, v in change.items())
    return [Action("loosen_clip", NAME, f"guard_stall: the Guard's {held_by.replace('_', ' ')} held the step on a "
                   f"flat loss: Guard {what}", value=change, evidence=evidence)]
