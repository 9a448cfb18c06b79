"""Re-initialise a bounded-activation layer saturated from the first epoch (a too-large initialisation)."""

from __future__ import annotations

from trainground.repair.actions import Action
from trainground.repair.policies._training import acting, planned
from trainground.repair.policy import RepairContext, register_policy

NAME = "reinit_saturated"


@register_policy(NAME, kind="training")
def reinit_saturated(context: RepairContext) -> list[Action]:
    """Re-draw the weights feeding a sigmoid/tanh layer that sat at its bounds from the first epoch on.

    Saturation present from the first epoch was put there by the initialisation (weights
    too large for a bounded unit); PyTorch's default initialisation (``U(+-1/sqrt(fan_in))``,
    variance 1/(3 fan_in), below Xavier's) keeps tanh and sigmoid in their linear range, so
    the layer's incoming weights are drawn again (``reinit_units`` with ``"all"``). Saturation
    that appears later is a training dynamic a re-initialisation does not change: silent then.
    """
    fit = getattr(context.config, "fit", None)
    if fit is None or context.data is None:
        return []
    steps_per_epoch = -(-len(context.data) // fit.batch_size)
    actions = []
    for f in acting(context, "saturated_activations"):
        layer = f.subject.removeprefix("layer:")
        if f.step is None or f.step > steps_per_epoch or planned(context, "reinit_units", layer):
            continue
        fraction = float(f.evidence.get("saturated_fraction", 0.0))
        actions.append(Action(
            "reinit_units", NAME, f"{100 * fraction:.0f} % of the outputs of {layer} at the activation's bounds "
            f"since step {f.step}: re-initialise the weights feeding it", target=layer, value="all",
            score=1.0 - fraction, evidence={"saturated_fraction": fraction, "onset": f.step,
                                            "steps_per_epoch": steps_per_epoch, "seed": context.round},
        ))
    return actions
