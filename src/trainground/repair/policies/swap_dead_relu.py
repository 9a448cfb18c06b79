"""Replace a largely dead ReLU layer by LeakyReLU, so its units get a gradient and cannot die."""

from __future__ import annotations

from trainground.repair.actions import Action
from trainground.repair.model_edits import LEAKY_SLOPE
from trainground.repair.policies._training import acting, planned
from trainground.repair.policy import RepairContext, register_policy

NAME = "swap_dead_relu"


@register_policy(NAME, kind="training")
def swap_dead_relu(context: RepairContext) -> list[Action]:
    """Swap the activation of each layer the dead_units check flags (>= half its units dead) for LeakyReLU(0.01)."""
    actions = []
    for f in acting(context, "dead_units"):
        layer = f.subject.removeprefix("layer:")
        if planned(context, "swap_activation", layer):
            continue  # swapped already: a LeakyReLU unit below 0 still counts as "never active"
        fraction = float(f.evidence.get("dead_fraction", 0.0))
        actions.append(Action(
            "swap_activation", NAME, f"{100 * fraction:.0f} % of the units of {layer} never activated",
            target=layer, value="leaky_relu", score=1.0 - fraction,
            evidence={"dead_fraction": fraction, "samples_seen": f.evidence.get("samples_seen"),
                      "negative_slope": LEAKY_SLOPE},
        ))
    return actions
