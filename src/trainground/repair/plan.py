"""The plan of the next repair round: the configuration it trains with and the edits to its model.

Training actions (``set_lr``, ``tighten_clip``, ``swap_activation``, ...) change the plan,
never a live run: :func:`apply_training_actions` returns a new :class:`TrainingPlan`, and the
repair loop builds the next round from it. Data actions change the data, not the plan
(see the repair loop).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from trainground.engine import RunConfig
from trainground.errors import ConfigError
from trainground.repair.actions import Action

# action kind -> fn(plan, action) -> plan: how each training action changes the plan.
PlanEdit = Callable[["TrainingPlan", Action], "TrainingPlan"]
# action kind -> fn(model, action) -> model: edits applied to each freshly built model.
ModelEdit = Callable[[torch.nn.Module, Action], torch.nn.Module]
_PLAN_EDITS: dict[str, PlanEdit] = {}
_MODEL_EDITS: dict[str, ModelEdit] = {}


@dataclass(frozen=True)
class TrainingPlan:
    """What the next round trains with.

    Args:
        config: the ``RunConfig`` (fit, model, loss, guard) of the round.
        model_edits: actions applied to every model the round builds (activation swaps,
            re-initialised units), in order.
        extra: options a plan edit sets for the loop (documented by the edit).
    """

    config: RunConfig
    model_edits: tuple[Action, ...] = ()
    extra: dict = field(default_factory=dict)


def plan_edit(kind: str) -> Callable[[PlanEdit], PlanEdit]:
    """Register how a training action of ``kind`` changes the plan."""

    def decorate(fn: PlanEdit) -> PlanEdit:
        _PLAN_EDITS[kind] = fn
        return fn

    return decorate


def model_edit(kind: str) -> Callable[[ModelEdit], ModelEdit]:
    """Register how a training action of ``kind`` edits a freshly built model (and keep it in the plan)."""

    def decorate(fn: ModelEdit) -> ModelEdit:
        _MODEL_EDITS[kind] = fn
        return fn

    return decorate


def apply_training_actions(plan: TrainingPlan, actions: Sequence[Action]) -> TrainingPlan:
    """A new plan with every training action applied in order (data actions are ignored)."""
    for action in actions:
        if action.is_data:
            continue
        if action.action in _MODEL_EDITS:
            plan = dataclasses.replace(plan, model_edits=(*plan.model_edits, action))
        elif action.action in _PLAN_EDITS:
            plan = _PLAN_EDITS[action.action](plan, action)
        else:
            raise ConfigError(f"repair action {action.action!r} (policy {action.policy!r}) has no plan edit")
    return plan


def prepare_model(plan: TrainingPlan, model: torch.nn.Module) -> torch.nn.Module:
    """Apply the plan's model edits to a freshly built model."""
    for action in plan.model_edits:
        model = _MODEL_EDITS[action.action](model, action)
    return model


def _with_config(plan: TrainingPlan, **sections) -> TrainingPlan:
    config = copy.deepcopy(plan.config)
    for name, values in sections.items():
        setattr(config, name, dataclasses.replace(getattr(config, name), **values))
    return dataclasses.replace(plan, config=config)


@plan_edit("set_lr")
def _set_lr(plan: TrainingPlan, action: Action) -> TrainingPlan:
    lr = float(action.value)
    if not lr > 0:
        raise ConfigError(f"set_lr from policy {action.policy!r}: learning rate must be > 0, got {lr}")
    return _with_config(plan, fit={"lr": lr})


@plan_edit("tighten_clip")
@plan_edit("loosen_clip")
def _tighten_clip(plan: TrainingPlan, action: Action) -> TrainingPlan:
    # value: the Guard options to change, e.g. {"percentile": 5.0} or {"max_norm": 1.0}.
    try:
        return _with_config(plan, guard=dict(action.value))
    except TypeError as err:
        raise ConfigError(f"{action.action} from policy {action.policy!r}: {err}") from None
