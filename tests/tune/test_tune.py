"""trainground tune: trials are run directories, diagnosis-aware pruning, best config, warm start."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine import RunConfig
from trainground.errors import ConfigError
from trainground.tune.config import TuneConfig, read_tune_file
from trainground.tune.space import ParamSpec, parse_space
from trainground.tune.study import tune

from .conftest import write_yaml

# The Guard's protections off, plain SGD at lr 3..10: the loss diverges within an epoch. Batch 8
# gives 31 steps per epoch: the checks need three sampled steps (one in 10) before they judge.
DIVERGING = """
fit: {epochs: 3, optimizer: sgd, batch_size: 8}
guard: {percentile: null, spike_z: null, trust_region: false}
tune: {pruner: none}
space:
  fit.lr: {kind: float, low: 3.0, high: 10.0, log: true}
"""
HEALTHY = """
fit: {epochs: 3}
tune: {pruner: none}
space:
  fit.lr: {kind: float, low: 1.0e-3, high: 3.0e-3, log: true}
  model.hidden: {kind: categorical, choices: [[16], [32, 32]]}
"""


def _run(blobs_csv, tmp_path, text, *, out="tune", trials=2, **kwargs):
    spec = read_tune_file(write_yaml(tmp_path / "space.yaml", text))
    base = {**spec.base, "data": {"source": str(blobs_csv), "target": "label"}}
    options = TuneConfig(**{**vars(spec.options), "trials": trials, **kwargs})
    return tune(base, out=tmp_path / out, options=options, space=spec.space, space_given=spec.space_given)


def test_diverging_trials_are_pruned_by_their_diagnosis_and_counted_per_reason(blobs_csv, tmp_path):
    result = _run(blobs_csv, tmp_path, DIVERGING)
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    for t in trials:
        assert t.user_attrs["pruned_reason"] in ("divergence", "nan")
        assert t.user_attrs["pruned_epoch"] == 1  # at once, not after the 3 epochs
        run = tmp_path / "tune" / "trials" / f"trial-{t.number:04d}"
        assert (run / "model.safetensors").is_file() and (run / "findings.json").is_file()
    summary = json.loads((tmp_path / "tune" / "summary.json").read_text())
    assert sum(summary["pruned_by_reason"].values()) == 2 and summary["states"] == {"pruned": 2}
    assert summary["compute"]["epochs"] == 2
    assert not (tmp_path / "tune" / "best_config.yaml").exists()  # no trial completed


def test_healthy_trials_complete_and_the_best_config_is_accepted_by_fit_and_diagnose(blobs_csv, tmp_path):
    result = _run(blobs_csv, tmp_path, HEALTHY)
    trials = result.study.get_trials()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all("pruned_reason" not in t.user_attrs for t in trials)
    best = yaml.safe_load((tmp_path / "tune" / "best_config.yaml").read_text())
    config = RunConfig.from_dict(best)
    assert config.model.hidden == tuple(json.loads(result.study.best_trial.params["model.hidden"]))
    assert config.fit.lr == result.study.best_trial.params["fit.lr"]
    assert not {"loss", "logging"} & set(best)  # diagnose refuses those sections
    # The trial's own run directory trained with exactly these options.
    run_config = yaml.safe_load((tmp_path / "tune" / "trials" / f"trial-{result.study.best_trial.number:04d}"
                                 / "config.yaml").read_text())
    assert run_config["fit"]["lr"] == config.fit.lr
    assert "Trials over time" in (tmp_path / "tune" / "report.html").read_text()


def test_warm_start_enqueues_the_best_earlier_trials_first(blobs_csv, tmp_path):
    first = _run(blobs_csv, tmp_path, HEALTHY, out="first")
    spec = read_tune_file(write_yaml(tmp_path / "space.yaml", HEALTHY))
    base = {**spec.base, "data": {"source": str(blobs_csv), "target": "label"}}
    second = tune(base, out=tmp_path / "second", options=TuneConfig(trials=1, pruner="none", warm_start_top=1),
                  space=spec.space, warm_from=str(tmp_path / "first"), space_given=False)
    trial = second.study.get_trials()[0]
    assert trial.params == first.study.best_trial.params
    assert trial.user_attrs["warm_start_from"] == f"trainground#{first.study.best_trial.number}"


def test_a_second_worker_joins_the_folder_and_the_study(blobs_csv, tmp_path):
    _run(blobs_csv, tmp_path, HEALTHY, trials=1)
    again = _run(blobs_csv, tmp_path, HEALTHY, trials=1)
    assert [t.number for t in again.study.get_trials()] == [0, 1]


def test_space_errors_name_the_key():
    with pytest.raises(ConfigError, match="fit has no option 'lrr'"):
        parse_space({"fit.lrr": {"kind": "float", "low": 1, "high": 2}}, "space")
    with pytest.raises(ConfigError, match="low < high"):
        parse_space({"fit.lr": {"kind": "float", "low": 2, "high": 1}}, "space")
    assert parse_space({"model.hidden": {"kind": "categorical", "choices": [[8]]}}, "s")["model.hidden"] == \
        ParamSpec("categorical", choices=([8],))


def test_cli_refuses_a_bad_space_with_one_line(blobs_csv, tmp_path):
    config = write_yaml(tmp_path / "bad.yaml", "space:\n  fit.nope: {kind: float, low: 1, high: 2}\n")
    res = CliRunner().invoke(app, ["tune", str(blobs_csv), "--target", "label", "--config", str(config),
                                   "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "fit has no option 'nope'" in res.output
    assert not (tmp_path / "t").exists()


def test_cli_tune_prints_the_best_trial(blobs_csv, tmp_path):
    config = write_yaml(tmp_path / "ok.yaml", HEALTHY)
    res = CliRunner().invoke(app, ["tune", str(blobs_csv), "--target", "label", "--config", str(config),
                                   "--trials", "1", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "best: trial 0" in res.output and "best_config.yaml" in res.output
