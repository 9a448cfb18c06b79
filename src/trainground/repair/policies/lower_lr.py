"""Lower the learning rate when the steps are too large (lr too high, non-finite gradients)."""

from __future__ import annotations

from trainground.repair.actions import Action
from trainground.repair.policies._training import (
    HEALTHY_UPDATE_RATIO,
    acting,
    current_lr,
    finite,
)
from trainground.repair.policy import RepairContext, register_policy

NAME = "lower_lr"
# The factor brings the measured update/weight ratio back to the healthy 1e-3 (the update
# scales about linearly with the lr, exactly for SGD without momentum state, to first order
# for Adam), bounded per round: at most 100x down (the lr_too_high check's threshold 1e-1 is
# 100x the healthy ratio, so a run just over it lands on the healthy scale) and at least 2x
# down (a smaller cut is within the noise of a learning-rate choice). The next round is
# diagnosed again, so a cut that was not enough is followed by another.
MIN_FACTOR, MAX_FACTOR = 0.01, 0.5
# Without a usable ratio (the run went non-finite before it was measured): 10x, the usual
# step of a learning-rate grid and the checks' own suggestion.
DEFAULT_FACTOR = 0.1


def lr_factor(update_ratio: float | None) -> float:
    """The factor the lr is multiplied by, from the median update/weight ratio (None: unknown)."""
    if update_ratio is None or update_ratio <= 0:
        return DEFAULT_FACTOR
    return min(MAX_FACTOR, max(MIN_FACTOR, HEALTHY_UPDATE_RATIO / update_ratio))


@register_policy(NAME, kind="training")
def lower_lr(context: RepairContext) -> list[Action]:
    """Lower the learning rate on lr_too_high (to a healthy update ratio) or non-finite gradients (10x)."""
    high = acting(context, "lr_too_high")
    nonfinite = [f for f in acting(context, "exploding_gradients") if "nonfinite_samples" in f.evidence]
    if not high and not nonfinite:
        return []
    lr = current_lr(context, high)
    if lr is None:
        return []
    reasons, factors, evidence = [], [], {"lr": lr}
    for f in high:
        ratio = finite(f.evidence.get("median_update_ratio"))
        factors.append(lr_factor(ratio))
        evidence.update(median_update_ratio=ratio, loss_diverged=f.evidence.get("loss_diverged"))
        reasons.append(f"lr_too_high: median update/weight ratio {ratio:.3g}" if ratio else "lr_too_high")
    if nonfinite:
        factors.append(DEFAULT_FACTOR)
        evidence["nonfinite_step"] = nonfinite[0].evidence.get("step")
        reasons.append(f"non-finite gradients at step {nonfinite[0].evidence.get('step')}")
    factor = min(factors)
    evidence.update(factor=factor, healthy_update_ratio=HEALTHY_UPDATE_RATIO)
    new = lr * factor
    return [Action("set_lr", NAME, f"{'; '.join(reasons)}: lr {lr:.3g} -> {new:.3g} (x{factor:.3g})", value=new,
                   evidence=evidence)]
