"""Re-initialise the dead units of a layer that is nearly all dead."""

from __future__ import annotations

from trainground.diagnosis.checks.dead_units import ERROR_FRACTION
from trainground.repair.actions import Action
from trainground.repair.policies._training import acting, planned
from trainground.repair.policy import RepairContext, register_policy

NAME = "reinit_dead_units"


@register_policy(NAME, kind="training", requires=("unit_activity",))
def reinit_dead_units(context: RepairContext) -> list[Action]:
    """Re-draw the weights of the dead units of a layer >= 90 % dead (the check's error level).

    A layer that far gone is nearly a constant: a LeakyReLU's 0.01 slope alone would let its
    units recover at a hundredth of the normal pace, so their incoming weights are drawn again
    from the default initialisation too (``model_edits.reinit_units``). The unit ids come from
    ``context.extra["dead_unit_ids"]`` (``{layer: [unit, ...]}``, measured by the loop on the
    round's trained model, ``repair.training.dead_unit_ids``); without them this policy is silent.
    """
    ids = context.extra.get("dead_unit_ids") or {}
    actions = []
    for f in acting(context, "dead_units"):
        layer = f.subject.removeprefix("layer:")
        fraction = float(f.evidence.get("dead_fraction", 0.0))
        units = sorted(int(u) for u in ids.get(layer, ()))
        if fraction < ERROR_FRACTION or not units or planned(context, "reinit_units", layer):
            continue
        actions.append(Action(
            "reinit_units", NAME, f"{100 * fraction:.0f} % of {layer} dead: re-initialise its {len(units)} dead units",
            target=layer, value=units, score=1.0 - fraction,
            evidence={"dead_fraction": fraction, "units": len(units), "threshold": ERROR_FRACTION, "seed": context.round},
        ))
    return actions
