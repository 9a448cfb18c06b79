"""Multi-target runs from a config / the CLI: --target a,b, YAML loss options, predict per task."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from trainground.cli import app
from trainground.data import load_multitarget, target_list
from trainground.engine import RunConfig, predict, read_metrics, run_fit
from trainground.engine.run_losses import coarse_tree, event_weights
from trainground.errors import ConfigError, DataError
from trainground.losses import (
    EventWeight,
    HierarchicalCrossEntropy,
    HierarchyConfig,
    LossConfig,
    WeightedCrossEntropy,
)
from trainground.losses.multitask import MultiTaskLoss


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 5))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    frame["kind"] = np.where(x[:, 0] > 0, "a", "b")
    frame["level"] = (x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5).astype(int)
    frame["family"] = np.where(frame["level"] == 0, "low", "high")
    path = tmp_path_factory.mktemp("mt") / "t.csv"
    frame.to_csv(path, index=False)
    return path


def _config(table, **loss):
    return RunConfig.from_dict({
        "data": {"source": str(table), "target": ["kind", "level"], "ignore": ["family"], "test_fraction": 0.2},
        "fit": {"epochs": 4, "batch_size": 32, "lr": 3e-3, "device": "cpu", "threads": 1},
        "loss": loss,
    })


def test_target_list_parses_commas_and_lists():
    assert target_list("a, b") == ["a", "b"] and target_list(["a", "b"]) == ["a", "b"]
    assert target_list("a") is None and target_list(None) is None
    with pytest.raises(DataError, match="twice"):
        target_list("a,a")


def test_load_multitarget_builtin_faults_names_its_tasks():
    data = load_multitarget("builtin:faults", targets=["fault", "severity"])
    assert [t.name for t in data.tasks] == ["fault", "severity"]
    assert data.tasks[0].num_classes == 12 and data.kind == "signal" and data.input_shape == (1024,)
    with pytest.raises(DataError, match="no target column"):
        load_multitarget("builtin:faults", targets=["fault", "nope"])


def test_run_fit_multitarget_writes_per_task_test_scores_and_predicts_per_task(table, tmp_path):
    result = run_fit(_config(table), out=tmp_path / "run")
    test = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "test"][0]
    assert test["test_accuracy/kind"] > 0.8 and "test_accuracy/level" in test
    assert result.test_accuracy == pytest.approx((test["test_accuracy/kind"] + test["test_accuracy/level"]) / 2)
    frame = predict(tmp_path / "run", table)
    assert {"predicted_kind", "predicted_level", "prob_kind_a", "prob_level_2"} <= set(frame.columns)
    assert set(frame["predicted_kind"]) <= {"a", "b"}
    assert np.allclose(frame[["prob_level_0", "prob_level_1", "prob_level_2"]].sum(axis=1), 1, atol=1e-5)
    truth = pd.read_csv(table)["kind"]
    assert (frame["predicted_kind"] == truth).mean() > 0.8


def test_yaml_loss_options_build_the_multitask_loss(table, tmp_path):
    config = _config(table, name="weighted_ce", weighting="inverse", task_weighting="uncertainty",
                     events=[{"when": "level == 2 and kind == 'a'", "weight": 5}])
    from trainground.engine.run import build_training, prepare_data
    _, _, _, loss = build_training(config, prepare_data(config.data))
    assert isinstance(loss, MultiTaskLoss) and type(loss.weighting).__name__ == "UncertaintyWeighting"
    kind_loss = loss.task_losses["kind"]
    assert isinstance(kind_loss, WeightedCrossEntropy) and kind_loss.sample_weights is not None
    frame = pd.read_csv(table)
    rows = np.flatnonzero(((frame["level"] == 2) & (frame["kind"] == "a")).to_numpy())
    weights = kind_loss.sample_weights(torch.as_tensor(rows[:3]))
    assert weights.tolist() == [5.0, 5.0, 5.0]
    assert kind_loss.sample_weights(torch.as_tensor(np.flatnonzero(frame["level"] == 0)[:2])).tolist() == [1.0, 1.0]


def test_hierarchical_loss_from_a_column_and_from_a_file(table, tmp_path):
    config = _config(table, name="hierarchical", hierarchy={"task": "level", "coarse_column": "family"})
    from trainground.engine.run import build_training, prepare_data
    _, _, _, loss = build_training(config, prepare_data(config.data))
    level = loss.task_losses["level"]
    assert isinstance(level, HierarchicalCrossEntropy) and level.fine_to_coarse.tolist() == [0, 1, 1]
    mapping = tmp_path / "map.csv"
    mapping.write_text("fine,coarse\n0,low\n1,high\n2,high\n")
    loss_config = LossConfig(name="hierarchical", hierarchy=HierarchyConfig(task="level", coarse_file=str(mapping)))
    tree = coarse_tree(loss_config, str(table), (0, 1, 2), "level", np.arange(10))
    assert tree == {0: "low", 1: "high", 2: "high"}
    inconsistent = tmp_path / "bad.csv"
    inconsistent.write_text("fine,coarse\n0,low\n0,high\n1,high\n2,high\n")
    loss_config.hierarchy = HierarchyConfig(task="level", coarse_file=str(inconsistent))
    with pytest.raises(DataError, match="two coarse classes"):
        coarse_tree(loss_config, str(table), (0, 1, 2), "level", np.arange(10))


def test_bad_loss_options_are_one_clear_error(table):
    with pytest.raises(ConfigError, match="coarse_column or coarse_file"):
        RunConfig.from_dict({"loss": {"name": "hierarchical"}})
    with pytest.raises(ConfigError, match="unknown option"):
        RunConfig.from_dict({"loss": {"events": [{"when": "a > 1", "wieght": 2}]}})
    with pytest.raises(ConfigError, match="cannot evaluate"):
        event_weights(LossConfig(events=(EventWeight("nope > 1"),)), str(table), np.arange(3))


def test_cli_target_a_b_end_to_end_and_predict(table, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(table), "--target", "kind,level", "--out", str(out), "--epochs", "2",
                                 "--ignore", "family"])
    assert result.exit_code == 0, result.output
    epoch = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"][-1]
    assert {"val_accuracy/kind", "val_accuracy/level", "train_loss/level"} <= set(epoch)
    result = runner.invoke(app, ["predict", str(out), str(table), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert "predicted_level" in pd.read_csv(tmp_path / "p.csv").columns
    bad = runner.invoke(app, ["fit", str(table), "--target", "kind,nope", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "nope" in bad.output
    assert json.loads((out / "findings.json").read_text()) is not None
