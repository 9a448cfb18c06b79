"""Raise the learning rate when steps are far too small and the loss is still high (lr too low)."""

from __future__ import annotations

from trainground.repair.actions import Action
from trainground.repair.policies._training import (
    HEALTHY_UPDATE_RATIO,
    acting,
    current_lr,
    finite,
)
from trainground.repair.policy import RepairContext, register_policy

NAME = "raise_lr"
# Up towards the healthy ratio 1e-3, bounded per round: at most 10x (the check's suggestion,
# one step of a log grid: raising an lr is the riskier direction, so smaller steps than when
# lowering), at least 2x. A round that overshoots is diagnosed again (lr_too_high lowers it)
# and the loop keeps the best round by validation accuracy, so an overshoot cannot win.
MIN_FACTOR, MAX_FACTOR = 2.0, 10.0
# "Steady but slow" findings have a normal ratio: 3x (half a decade, sqrt(10)).
STEADY_FACTOR = 3.0
# Never raise while the same round shows signs of too large a step.
CONFLICTS = ("lr_too_high", "exploding_gradients", "loss_spikes", "oscillating_loss")


@register_policy(NAME, kind="training")
def raise_lr(context: RepairContext) -> list[Action]:
    """Raise the learning rate on lr_too_low, towards a healthy update ratio (at most 10x per round)."""
    low = acting(context, "lr_too_low")
    if not low or any(acting(context, c) for c in CONFLICTS):
        return []
    lr = current_lr(context, low)
    if lr is None:
        return []
    f = low[0]
    ratio = finite(f.evidence.get("median_update_ratio"))
    threshold = finite(f.evidence.get("threshold")) or 0.0
    if ratio is not None and ratio > 0 and ratio < threshold:
        factor = min(MAX_FACTOR, max(MIN_FACTOR, HEALTHY_UPDATE_RATIO / ratio))
        why = f"median update/weight ratio {ratio:.3g}"
    else:
        factor = STEADY_FACTOR
        why = f"the loss falls steadily but slowly ({100 * float(f.evidence.get('steady_share', 0)):.0f} % of moves down)"
    new = lr * factor
    return [Action("set_lr", NAME, f"lr_too_low: {why}: lr {lr:.3g} -> {new:.3g} (x{factor:.3g})", value=new,
                   evidence={"lr": lr, "median_update_ratio": ratio, "factor": factor,
                             "loss": f.evidence.get("loss"), "initial_loss": f.evidence.get("initial_loss")})]
