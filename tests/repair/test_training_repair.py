"""The training-repair loop end to end on tiny broken runs; resuming a round from a rollback."""

import json

import numpy as np
import torch

from trainground.data import stratified_split
from trainground.engine import FitConfig, RunConfig
from trainground.gradients import GuardConfig, read_actions
from trainground.models import MLP
from trainground.repair import Action, TrainingPlan, apply_training_actions
from trainground.repair.training import repair_training, train_round

UNGUARDED = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


def splits(digits):
    train_pos, val_pos = stratified_split(digits.labels.numpy(), fraction=0.3, seed=0)
    val = digits.subset(val_pos)
    val_pos2, test_pos = stratified_split(val.labels.numpy(), fraction=0.5, seed=0)
    return digits.subset(train_pos), val.subset(val_pos2), val.subset(test_pos)


def build(train):
    return MLP(train.features.shape[1], train.num_classes, hidden=(32,)).fit_input_stats(train.features)


def test_a_far_too_high_lr_is_repaired_and_every_action_recorded(digits, tmp_path):
    train, val, test = splits(digits)
    config = RunConfig(fit=FitConfig(optimizer="sgd", lr=3.0, momentum=0.9, epochs=3, device="cpu"), guard=UNGUARDED)
    result = repair_training(build, train, val_data=val, test_data=test, config=config, max_rounds=2,
                             out=tmp_path / "repair")
    before, after = result.rounds[0], result.best
    assert before.val_accuracy < 0.7 and after.val_accuracy > before.val_accuracy + 0.2
    kinds = {a.action for _, a in result.actions}
    assert "set_lr" in kinds and after.plan.config.fit.lr < 3.0
    assert result.best_round >= 1 and result.model is not None
    records = read_actions(tmp_path / "repair" / "actions.jsonl")
    assert [(r["step"], r["action"]) for r in records] == [(k, a.action) for k, a in result.actions]
    assert all(r["evidence"]["policy"] and r["reason"] for r in records)
    metrics = json.loads((tmp_path / "repair" / "metrics.json").read_text())
    assert metrics["best_round"] == result.best_round
    assert metrics["before"]["val_accuracy"] == before.val_accuracy
    assert metrics["after"]["test_accuracy"] == after.test_accuracy
    assert metrics["rounds"][1]["actions"].get("set_lr") == 1
    assert (tmp_path / "repair" / "round_0" / "findings.json").exists()
    assert (tmp_path / "repair" / "config.yaml").exists()


def test_a_healthy_run_is_left_alone(digits):
    train, val, _ = splits(digits)
    config = RunConfig(fit=FitConfig(epochs=8, device="cpu"))
    result = repair_training(build, train, val_data=val, config=config, max_rounds=2)
    assert result.actions == [] and len(result.rounds) == 1 and result.best_round == 0
    assert "called for an action" in result.stopped


def test_a_rolled_back_round_resumes_from_the_checkpoint_without_the_skipped_samples(digits, tmp_path):
    train, val, _ = splits(digits)
    config = RunConfig(fit=FitConfig(epochs=2, device="cpu"))
    plan = TrainingPlan(config)
    first = train_round(plan, build, train, val_data=val, run_dir=tmp_path / "r0")
    checkpoints = sorted((tmp_path / "r0" / "checkpoints").glob("step-*.pt"))  # each has its .sha256 beside it
    assert len(checkpoints) == 2  # every epoch end kept, so a rollback can reach any of them
    skip = [int(i) for i in train.index[:7]]
    plan = apply_training_actions(plan, [Action("rollback", "rollback", "spike", target=0,
                                                value={"checkpoint": str(checkpoints[0]), "skip_samples": skip})])
    resumed = train_round(plan, build, train, val_data=val, run_dir=tmp_path / "r1")
    assert resumed.trainings == 0.5  # epoch 2 of 2
    assert not np.isin(resumed.result.train_index, skip).any() and len(resumed.train) == len(train) - 7
    assert len(resumed.result.history) == 1
    saved = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
    assert resumed.result.history[0]["train_loss"] < first.result.history[0]["train_loss"]
    assert saved["epoch"] == 1


def test_a_round_that_does_not_help_stops_the_loop_and_round_0_is_kept(digits):
    from trainground.repair import register_policy
    from trainground.repair.policy import _REGISTRY

    @register_policy("test_only_wreck_lr", kind="training")
    def wreck(context):
        """Set an absurd SGD learning rate (test)."""
        return [Action("set_lr", "test_only_wreck_lr", "test", value=50.0)]

    try:
        train, val, _ = splits(digits)
        config = RunConfig(fit=FitConfig(optimizer="sgd", lr=0.05, momentum=0.9, epochs=2, device="cpu"),
                           guard=UNGUARDED)
        result = repair_training(build, train, val_data=val, config=config, max_rounds=3,
                                 policies=["test_only_wreck_lr"])
    finally:
        _REGISTRY.pop("test_only_wreck_lr")
    assert len(result.rounds) == 2 and result.best_round == 0
    assert result.rounds[1].val_accuracy < result.rounds[0].val_accuracy
    assert "not significantly better" in result.stopped and result.model is not None
