"""Each training policy on crafted findings: when it acts, how much, and when it stays silent."""

import pytest
import torch

from trainground.diagnosis import Finding, Severity
from trainground.engine import Callback, FitConfig, RunConfig, fit
from trainground.gradients import GuardConfig
from trainground.models import MLP
from trainground.repair import (
    Action,
    RepairContext,
    TrainingPlan,
    get_policy,
    run_policies,
)
from trainground.repair.policies.rollback import batch_members

UNGUARDED = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


def finding(check, evidence=None, severity=Severity.WARNING, subject="run", step=None):
    return Finding(check, severity, subject, "crafted", evidence or {}, step=step)


def context(digits, findings, *, lr=0.1, guard=None, **extra):
    config = RunConfig(fit=FitConfig(lr=lr), guard=guard or GuardConfig())
    return RepairContext(round=0, data=digits, findings=findings, config=config, extra=extra)


def run(name, ctx):
    return get_policy(name).fn(ctx)


def test_lower_lr_brings_the_update_ratio_back_to_the_healthy_scale(digits):
    (action,) = run("lower_lr", context(digits, [finding("lr_too_high", {"median_update_ratio": 0.004})]))
    assert action.action == "set_lr" and action.value == pytest.approx(0.1 * 0.25)  # 1e-3 / 4e-3
    (action,) = run("lower_lr", context(digits, [finding("lr_too_high", {"median_update_ratio": 5.0})]))
    assert action.value == pytest.approx(0.1 * 0.01)  # bounded: at most 100x down per round
    (action,) = run("lower_lr", context(digits, [finding("lr_too_high", {"median_update_ratio": 0.0011})]))
    assert action.value == pytest.approx(0.1 * 0.5)  # at least 2x down
    (action,) = run("lower_lr", context(digits, [finding("exploding_gradients", {"step": 7, "nonfinite_samples": 3},
                                                         Severity.ERROR)]))
    assert action.value == pytest.approx(0.01) and action.evidence["nonfinite_step"] == 7
    # an info finding, or exploding gradients that stayed finite, are not the lr policy's business
    assert run("lower_lr", context(digits, [finding("lr_too_high", {"median_update_ratio": 0.5}, Severity.INFO)])) == []
    assert run("lower_lr", context(digits, [finding("exploding_gradients", {"median_relative_gradient": 3.0})])) == []


def test_raise_lr_is_bounded_and_yields_to_signs_of_a_large_step(digits):
    low = finding("lr_too_low", {"median_update_ratio": 1e-6, "threshold": 1e-4})
    (action,) = run("raise_lr", context(digits, [low], lr=1e-5))
    assert action.value == pytest.approx(1e-4)  # 10x at most
    (action,) = run("raise_lr", context(digits, [finding("lr_too_low", {"median_update_ratio": 4e-5,
                                                                         "threshold": 1e-4})], lr=1e-4))
    assert action.value == pytest.approx(1e-3)  # the healthy ratio is 25x away: capped at 10x
    (action,) = run("raise_lr", context(digits, [finding("lr_too_low", {"median_update_ratio": 1e-3, "threshold": 1e-4,
                                                                         "steady_share": 0.9})], lr=1e-3))
    assert action.value == pytest.approx(3e-3)
    assert run("raise_lr", context(digits, [low, finding("loss_spikes", {"spikes": 3})], lr=1e-5)) == []


def test_tighten_clip_restores_the_guard_then_adds_autoclip_then_halves_its_percentile(digits):
    spikes = finding("loss_spikes", {"spikes": 4, "unrecovered": 1})
    (action,) = run("tighten_clip", context(digits, [spikes], guard=UNGUARDED))
    assert action.value == {"spike_z": 6.0, "zscore": 2.5, "trust_region": True}
    assert action.evidence["before"] == {"spike_z": None, "zscore": None, "trust_region": False}
    exploding = [finding("exploding_gradients", {"median_relative_gradient": 4.0})]
    (action,) = run("tighten_clip", context(digits, exploding))  # the defaults: the outlier clip only
    assert action.value == {"percentile": 10.0}
    (action,) = run("tighten_clip", context(digits, exploding, guard=GuardConfig(percentile=10.0)))
    assert action.value == {"percentile": 5.0}
    assert run("tighten_clip", context(digits, [spikes], guard=GuardConfig(percentile=1.0))) == []
    assert run("tighten_clip", context(digits, [finding("loss_spikes", {"spikes": 1}, Severity.INFO)])) == []


def test_dead_relu_policies_swap_and_reinit_only_what_the_evidence_supports(digits):
    dead = finding("dead_units", {"dead_fraction": 0.95, "samples_seen": 1024}, Severity.ERROR, subject="layer:body.1")
    half = finding("dead_units", {"dead_fraction": 0.6}, subject="layer:body.3")
    ctx = context(digits, [dead, half], dead_unit_ids={"body.1": [0, 2, 5], "body.3": [1]})
    swaps = run("swap_dead_relu", ctx)
    assert [(a.action, a.target, a.value) for a in swaps] == [("swap_activation", "body.1", "leaky_relu"),
                                                              ("swap_activation", "body.3", "leaky_relu")]
    (reinit,) = run("reinit_dead_units", ctx)  # only the layer >= 90 % dead
    assert (reinit.action, reinit.target, reinit.value) == ("reinit_units", "body.1", [0, 2, 5])
    assert run("reinit_dead_units", context(digits, [dead])) == []  # no unit ids: silent
    planned = TrainingPlan(RunConfig(), model_edits=tuple(swaps))
    assert run("swap_dead_relu", context(digits, [dead, half], plan=planned)) == []


def test_task_weights_equalise_gradient_norms_without_raising_any_weight(digits):
    ctx = context(digits, [], task_grad_norms={"digit": 0.5, "parity": 50.0}, task_weights={"parity": 100.0})
    (action,) = run("task_weights", ctx)
    assert action.value == pytest.approx({"digit": 1.0, "parity": 100.0 * 0.5 / 50.0})
    assert action.evidence["ratio"] == pytest.approx(100.0)
    assert run("task_weights", context(digits, [], task_grad_norms={"a": 1.0, "b": 5.0})) == []
    assert run("task_weights", context(digits, [])) == []


def test_no_training_policy_acts_on_info_findings_or_data_findings(digits):
    findings = [finding("loss_spikes", {"spikes": 1, "unrecovered": 0}, Severity.INFO, step=40),
                finding("label_issues", {"count": 12}, subject="dataset"),
                finding("lr_too_low", {"median_update_ratio": 1e-6, "threshold": 1e-4}, Severity.INFO)]
    assert run_policies(context(digits, findings), kind="training") == []


class Batches(Callback):
    def __init__(self):
        self.index = {}

    def on_batch_start(self, state):
        self.index[state.step + 1] = state.batch[0].clone()


def test_rollback_resumes_before_the_spike_and_skips_the_spiking_batch(digits, tmp_path):
    data = digits.subset(torch.arange(300))
    config = RunConfig(fit=FitConfig(epochs=3, batch_size=64, keep_checkpoints=10, checkpoint_seconds=0.0, device="cpu",
                                      val_fraction=0.0))
    torch.manual_seed(0)
    seen = Batches()
    result = fit(MLP(64, 10, hidden=(16,)), data, config=config.fit, callbacks=[seen], run_dir=tmp_path / "run")
    spe = 5  # ceil(300 / 64)
    spike = 2 * spe + 3  # third batch of the third epoch
    members = batch_members(300, 64, 0, spike)
    assert torch.equal(torch.as_tensor(result.train_index[members]), seen.index[spike])
    spikes = finding("loss_spikes", {"spikes": 1, "unrecovered": 1, "spike_steps": [spike]}, step=spike)
    extra = {"train_index": result.train_index, "resumable": True}
    ctx = RepairContext(round=0, data=data, findings=[spikes], config=config, run_dir=tmp_path / "run", extra=extra)
    (action,) = get_policy("rollback").fn(ctx)
    assert action.target == 2 * spe  # the checkpoint of the last epoch end before the spike
    assert action.value["skip_samples"] == sorted(seen.index[spike].tolist())
    # recurrent spikes point at the step size, not the batches: roll back, skip nothing
    many = finding("loss_spikes", {"spikes": 5, "unrecovered": 2, "spike_steps": [11, 12, 13, 14, 15]}, step=spike)
    (action,) = get_policy("rollback").fn(RepairContext(0, data, [many], config=config, run_dir=tmp_path / "run",
                                                        extra=extra))
    assert action.value["skip_samples"] == []
    # a spike before the first good checkpoint, or no run directory: nothing to go back to
    early = finding("loss_spikes", {"spikes": 1, "unrecovered": 1, "spike_steps": [3]}, step=3)
    assert get_policy("rollback").fn(RepairContext(0, data, [early], config=config, run_dir=tmp_path / "run",
                                                   extra=extra)) == []
    assert get_policy("rollback").fn(RepairContext(0, data, [spikes], config=config, extra=extra)) == []
    # a loop that does not resume from checkpoints gets no rollback
    assert get_policy("rollback").fn(RepairContext(0, data, [spikes], config=config, run_dir=tmp_path / "run")) == []
    assert isinstance(action, Action)


def test_saturation_from_the_first_epoch_reinitialises_the_layer_later_saturation_does_not(digits):
    early = finding("saturated_activations", {"saturated_fraction": 0.95}, Severity.ERROR, subject="layer:body.1",
                    step=1)
    late = finding("saturated_activations", {"saturated_fraction": 0.7}, subject="layer:body.3", step=500)
    (action,) = run("reinit_saturated", context(digits, [early, late]))
    assert (action.action, action.target, action.value) == ("reinit_units", "body.1", "all")


def test_loosen_clip_acts_on_the_part_that_holds_the_step_and_tighten_clip_yields(digits):
    clip = finding("guard_stall", {"held_by": "clip", "median_step_share": 1e-4})
    (action,) = run("loosen_clip", context(digits, [clip], guard=GuardConfig(max_norm=1e-4)))
    assert action.action == "loosen_clip" and action.value == {"max_norm": pytest.approx(1e-3)}
    (action,) = run("loosen_clip", context(digits, [clip], guard=GuardConfig(percentile=10.0)))
    assert action.value == {"percentile": 20.0}
    (action,) = run("loosen_clip", context(digits, [clip]))  # the default outlier clip
    assert action.value == {"zscore": 5.0}
    trust = finding("guard_stall", {"held_by": "trust_region", "median_step_share": 0.01})
    (action,) = run("loosen_clip", context(digits, [trust]))
    assert action.value == {"trust_region": False}
    assert run("loosen_clip", context(digits, [trust], guard=GuardConfig(trust_region=False))) == []
    assert run("loosen_clip", context(digits, [clip, finding("loss_spikes", {"spikes": 3})])) == []
    # tighten_clip never deepens a stall
    assert run("tighten_clip", context(digits, [finding("loss_spikes", {"spikes": 3}), clip])) == []
