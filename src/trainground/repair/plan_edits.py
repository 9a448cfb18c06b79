"""Plan edits of training repair that are not config fields: rollback and task weights.

``set_lr`` and ``tighten_clip`` change the ``RunConfig`` (``plan.py``); the two below set
options in ``TrainingPlan.extra`` that the round runner (``repair/training.py``,
``repair/multitask.py``) honours:

``plan.extra["resume_from"]`` = ``{"checkpoint": path, "step": int, "epoch": int}``
    the next round loads the model (and optimizer state) of that checkpoint, the last good
    one before a persistent spike, and trains the epochs that remain after it.
``plan.extra["skip_samples"]`` = sorted tuple of input indices
    samples left out of the next rounds' training data (the members of isolated spiking
    batches); they are listed in the rollback action, never silently lost.
``plan.extra["task_weights"]`` = ``{task: weight}``
    loss weight of each task in a multi-task run (``repair.multitask.fit_multitask``).
"""

from __future__ import annotations

import dataclasses

from trainground.errors import ConfigError
from trainground.repair.actions import Action
from trainground.repair.plan import TrainingPlan, plan_edit


def _with_extra(plan: TrainingPlan, **values) -> TrainingPlan:
    return dataclasses.replace(plan, extra={**plan.extra, **values})


@plan_edit("rollback")
def rollback(plan: TrainingPlan, action: Action) -> TrainingPlan:
    """Resume the next round from ``action.value["checkpoint"]`` and skip ``value["skip_samples"]``."""
    value = dict(action.value or {})
    if "checkpoint" not in value:
        raise ConfigError(f"rollback from policy {action.policy!r}: value needs a 'checkpoint' path")
    resume = {"checkpoint": str(value["checkpoint"]), "step": int(action.target or value.get("step", 0)),
              "epoch": int(value.get("epoch", 0))}
    skip = tuple(sorted({*plan.extra.get("skip_samples", ()), *(int(i) for i in value.get("skip_samples", ()))}))
    return _with_extra(plan, resume_from=resume, skip_samples=skip)


@plan_edit("task_weights")
def task_weights(plan: TrainingPlan, action: Action) -> TrainingPlan:
    """Set the loss weight of each task named in ``action.value`` (others keep theirs)."""
    weights = {str(k): float(v) for k, v in dict(action.value or {}).items()}
    if not weights or any(not w > 0 for w in weights.values()):
        raise ConfigError(f"task_weights from policy {action.policy!r}: weights must be > 0, got {action.value!r}")
    return _with_extra(plan, task_weights={**plan.extra.get("task_weights", {}), **weights})
