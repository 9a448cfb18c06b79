"""Self-repair: policies read findings and return actions; one round runner (``rounds``) applies
them, records each one, retrains and keeps a round only when it is significantly better, or for
label edits not worse than round 0 by the margin (``selection``), for every kind of repair (see
ARCHITECTURE.md, ``repair/``)."""

# Register the training plan/model edits (rollback, task_weights, swap_activation, reinit_units).
from trainground.repair import model_edits, plan_edits  # noqa: F401
from trainground.repair.actions import (
    DATA_ACTIONS,
    TRAINING_ACTIONS,
    Action,
    ActionKind,
)
from trainground.repair.edits import (
    RepairState,
    apply_data_actions,
    round_loss,
    training_view,
)
from trainground.repair.loop import repair_loop
from trainground.repair.plan import (
    TrainingPlan,
    apply_training_actions,
    model_edit,
    plan_edit,
    prepare_model,
)
from trainground.repair.policy import (
    PolicyKind,
    PolicySpec,
    RepairContext,
    available_policies,
    get_policy,
    register_policy,
    run_policies,
)
from trainground.repair.result import RepairResult
from trainground.repair.rounds import Planned, RoundOutcome, Trainer, run_rounds
from trainground.repair.selection import ALPHA, compare, keep_best
from trainground.repair.training import TrainingRepairResult, repair_training

__all__ = [
    "DATA_ACTIONS", "TRAINING_ACTIONS", "Action", "ActionKind", "PolicyKind", "PolicySpec", "RepairContext",
    "TrainingPlan", "apply_training_actions", "available_policies", "get_policy", "model_edit", "plan_edit",
    "prepare_model", "register_policy", "run_policies",
]
__all__ += ["RepairResult", "RepairState", "apply_data_actions", "repair_loop", "round_loss", "training_view"]
# the round runner and its keep rule
__all__ += ["ALPHA", "Planned", "RoundOutcome", "Trainer", "compare", "keep_best", "run_rounds"]
# training repair (repair-train)
__all__ += ["TrainingRepairResult", "repair_training"]
