import json

import pytest

from trainground.errors import ConfigError
from trainground.gradients import ActionLog, read_actions
from trainground.repair import (
    Action,
    RepairContext,
    get_policy,
    register_policy,
    run_policies,
)
from trainground.repair.policy import _REGISTRY


def test_action_record_round_trips_through_actions_jsonl(tmp_path):
    import numpy as np

    action = Action("relabel", "relabel", "9 of 10 neighbours say 3", target=np.int64(17), value=np.int64(3),
                    score=0.04, evidence={"neighbours": 0.9})
    log = ActionLog(tmp_path / "actions.jsonl")
    log.append(action.record(2))
    (record,) = read_actions(log.path)
    assert record["step"] == 2 and record["action"] == "relabel"
    assert json.loads(json.dumps(record)) == record
    assert Action.from_record(record) == Action("relabel", "relabel", "9 of 10 neighbours say 3", 17, 3, 0.04,
                                                {"neighbours": 0.9})
    assert action.is_data and not Action("set_lr", "p", "r", value=0.01).is_data


def test_unknown_action_kind_is_refused():
    with pytest.raises(ValueError, match="unknown action"):
        Action("delete_everything", "p", "r")


def test_policies_register_run_and_filter_by_kind(digits):
    @register_policy("test_only_training", kind="training")
    def halve_lr(context):
        """Halve the learning rate (test)."""
        return [Action("set_lr", "test_only_training", "test", value=0.5)]

    try:
        context = RepairContext(round=0, data=digits)
        assert get_policy("test_only_training").description == "Halve the learning rate (test)."
        assert run_policies(context, ["test_only_training"]) == [Action("set_lr", "test_only_training", "test", value=0.5)]
        assert run_policies(context, ["test_only_training"], kind="data") == []
    finally:
        _REGISTRY.pop("test_only_training")
    with pytest.raises(ConfigError, match="unknown repair policy"):
        get_policy("test_only_training")


def test_training_actions_change_a_new_plan_not_the_old_one():
    from trainground.engine import RunConfig
    from trainground.repair import TrainingPlan, apply_training_actions

    plan = TrainingPlan(RunConfig())
    new = apply_training_actions(plan, [
        Action("set_lr", "p", "spikes", value=1e-4),
        Action("tighten_clip", "p", "exploding", value={"percentile": 5.0}),
        Action("relabel", "p", "data actions are not the plan's", target=0, value=1),
    ])
    assert (new.config.fit.lr, new.config.guard.percentile) == (1e-4, 5.0)
    assert (plan.config.fit.lr, plan.config.guard.percentile) == (1e-3, None)  # the defaults, untouched
    with pytest.raises(ConfigError, match="learning rate must be > 0"):
        apply_training_actions(plan, [Action("set_lr", "p", "r", value=0.0)])
    with pytest.raises(ConfigError, match="tighten_clip"):
        apply_training_actions(plan, [Action("tighten_clip", "p", "r", value={"no_such_option": 1})])
