"""DiagnosisCallback in fit: run-directory files, resume, re-diagnosis from disk, CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from trainground.cli import app
from trainground.diagnosis import (
    DiagnosisCallback,
    DiagnosisConfig,
    Severity,
    read_findings,
)
from trainground.diagnosis.layers_file import read_layers
from trainground.diagnosis.run_dir import diagnose_run
from trainground.engine import FitConfig, fit
from trainground.models import MLP


@pytest.fixture(scope="module")
def small(digits):
    return digits.subset(torch.arange(600).numpy())


def _model(data, frozen: bool = False):
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(32, 32)).fit_input_stats(data.features)
    if frozen:
        for p in model.body[2].parameters():
            p.requires_grad_(False)
    return model


def _config(epochs: int, **kw) -> FitConfig:
    return FitConfig(epochs=epochs, batch_size=64, device="cpu", val_fraction=0.2, **kw)


def test_run_dir_gets_layers_and_findings(small, tmp_path):
    callback = DiagnosisCallback(DiagnosisConfig(sample_every=3, check_every=20))
    fit(_model(small, frozen=True), small, config=_config(4), callbacks=[callback], run_dir=tmp_path / "run")
    layers = read_layers(tmp_path / "run" / "layers.parquet")
    assert list(layers.columns) == ["step", "epoch", "layer", "stat", "value"]
    assert {"grad_norm", "update_ratio", "dead_fraction", "effective_rank", "act_mean"} <= set(layers["stat"])
    assert len(pd.read_parquet(tmp_path / "run" / "layers.parquet")) == len(layers)  # a plain Parquet folder
    on_disk = read_findings(tmp_path / "run" / "findings.json")
    assert [f.check for f in on_disk if f.severity >= Severity.WARNING] == ["frozen_layer"]
    assert on_disk == callback.findings
    # The run directory alone gives the same training findings.
    again = diagnose_run(tmp_path / "run", with_data=False)
    assert [(f.check, f.subject, f.severity) for f in again] == [(f.check, f.subject, f.severity) for f in on_disk]


def test_resume_gives_the_same_layers_table(small, tmp_path, crash_at):
    whole = DiagnosisCallback(DiagnosisConfig(sample_every=2))
    fit(_model(small), small, config=_config(4), callbacks=[whole], run_dir=tmp_path / "whole")
    first = DiagnosisCallback(DiagnosisConfig(sample_every=2))
    with pytest.raises(RuntimeError, match="crash"):  # mid-epoch, 3 steps after the step-10 checkpoint
        fit(_model(small), small, config=_config(4, checkpoint_every=5), callbacks=[first, crash_at(13, RuntimeError)],
            run_dir=tmp_path / "split")
    second = DiagnosisCallback(DiagnosisConfig(sample_every=2))
    fit(_model(small), small, config=_config(4, checkpoint_every=5), callbacks=[second], run_dir=tmp_path / "split",
        resume=True)
    a = read_layers(tmp_path / "whole" / "layers.parquet")
    b = read_layers(tmp_path / "split" / "layers.parquet")
    key = ["step", "layer", "stat"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(whole.evidence().steps, second.evidence().steps)


def test_sample_every_must_be_positive():
    from trainground.errors import ConfigError

    with pytest.raises(ConfigError):
        DiagnosisCallback(DiagnosisConfig(sample_every=0))


def test_unknown_check_lists_known_ones():
    from trainground.errors import ConfigError

    with pytest.raises(ConfigError, match="known checks"):
        DiagnosisCallback(DiagnosisConfig(checks=("no_such_check",)))


def test_cli_findings_prints_and_recomputes(small, tmp_path):
    run = tmp_path / "run"
    # 24 steps: the frozen-layer check needs 3 sampled steps, which the default 1 in 20 gives
    # only from step 41 on; sample 1 in 10 here (this test is about the CLI, not the sampling)
    fit(_model(small, frozen=True), small, config=_config(3), callbacks=[DiagnosisCallback(DiagnosisConfig(
        sample_every=10))], run_dir=run)
    result = CliRunner().invoke(app, ["findings", str(run)])
    assert result.exit_code == 0, result.output
    assert "frozen_layer" in result.output and "body.2" in result.output
    (run / "findings.json").unlink()
    result = CliRunner().invoke(app, ["findings", str(run)])
    assert result.exit_code == 2 and "--recompute" in result.output
    result = CliRunner().invoke(app, ["findings", str(run), "--recompute"])
    assert result.exit_code == 0 and "frozen_layer" in result.output
    assert json.loads((run / "findings.json").read_text())["findings"]


def test_default_sampling_is_one_step_in_twenty(small):
    # The decided default (issues 16/17): gradient statistics on steps 0, 20, 40 of a 48-step
    # run (recorded at step + 1), the loss on every step.
    callback = DiagnosisCallback(DiagnosisConfig(checks=()))
    fit(_model(small), small, config=_config(6), callbacks=[callback])
    evidence = callback.evidence()
    assert sorted(set(evidence.layers.loc[evidence.layers["stat"] == "grad_norm", "step"])) == [1, 21, 41]
    assert len(evidence.steps) == 48
