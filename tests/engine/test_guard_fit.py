from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from trainground import Guard, GuardConfig
from trainground.engine import FitConfig, RunConfig, fit, read_metrics
from trainground.errors import ConfigError
from trainground.gradients import read_actions
from trainground.models import ModelConfig, build_model


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(32,)), input_shape=(64,), num_classes=10)


def test_metrics_hold_the_guard_scalars_per_step(digits, tmp_path):
    data = digits.subset(torch.arange(300))
    fit(_model(), data, config=FitConfig(epochs=2, batch_size=50, device="cpu", log_every=4), run_dir=tmp_path)
    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "step"]
    assert len(steps) == 12
    for r in steps:
        assert {"loss", "lr", "grad_norm", "clip_threshold", "accum_k", "skipped"} <= r.keys()
        assert r["grad_norm"] > 0 and r["accum_k"] == 1 and r["skipped"] == 0.0


class SpikeOnce(nn.Module):
    """Cross-entropy, except one call returns a loss a million times too large (a bad batch)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, logits, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * 1e6 if self.calls == self.at else loss


def test_fit_skips_a_spike_and_records_the_action(digits, tmp_path):
    data = digits.subset(torch.arange(400))
    fit(_model(), data, config=FitConfig(epochs=3, batch_size=40, device="cpu", val_fraction=0), run_dir=tmp_path,
        loss_fn=SpikeOnce(at=15), guard=GuardConfig(check_every=5))
    actions = read_actions(tmp_path / "actions.jsonl")
    assert [(a["step"], a["action"]) for a in actions] == [(14, "skip")]
    assert actions[0]["evidence"]["loss"] > 1e5 and actions[0]["reason"]
    steps = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "step"}
    assert steps[15]["skipped"] == 1.0 and steps[14]["skipped"] == 0.0  # metrics step = steps done after it


def test_fit_accepts_a_ready_guard_and_accumulates(digits):
    data = digits.subset(torch.arange(330))
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    guard = Guard(model, opt, config=GuardConfig(accumulation=2))
    result = fit(model, data, config=FitConfig(epochs=2, batch_size=50, device="cpu", val_fraction=0),
                 optimizer=opt, guard=guard)
    assert result.steps == 14  # batches; the Guard stepped 4 times per epoch (3 full windows + 1 short)
    assert guard.steps == 8


def test_resume_mid_accumulation_window_is_bit_identical(digits, tmp_path, crash_at):
    cfg = FitConfig(epochs=2, batch_size=64, checkpoint_every=3, device="cpu", log_every=5)
    guard = GuardConfig(accumulation=2)
    fit(_model(), digits, config=cfg, run_dir=tmp_path / "a", guard=guard)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), digits, config=cfg, run_dir=tmp_path / "b", callbacks=[crash_at(31)], guard=guard)
    fit(_model(), digits, config=cfg, run_dir=tmp_path / "b", resume=True, guard=guard)
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_run_config_has_a_guard_section():
    config = RunConfig.from_dict({"guard": {"accumulation": 4, "percentile": None, "amp": "bf16"}})
    assert config.guard == GuardConfig(accumulation=4, percentile=None, amp="bf16")
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="spike_z"):
        RunConfig.from_dict({"guard": {"spike_zz": 3.0}})
    with pytest.raises(ConfigError, match="amp"):
        RunConfig.from_dict({"guard": {"amp": "fp8"}})
