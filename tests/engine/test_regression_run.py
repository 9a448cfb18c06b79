"""Regression targets from the CLI: --target price (auto or --regression), mixed class + regression, bad values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from trainground.cli import app
from trainground.data import load_targets, with_target_scales
from trainground.data.tasks import MultiTargetDataset
from trainground.engine import read_metrics
from trainground.engine.task_kinds import StandardisedMSE
from trainground.errors import DataError
from trainground.models import MLP
from trainground.models.heads import TaskHeads

PLANTED = (5, 50, 120)  # rows whose price is shifted by 10 standard deviations


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 240
    a, b = rng.normal(size=n), rng.normal(size=n)
    price = 100 + 30 * a - 20 * b + rng.normal(scale=3, size=n)  # std ~36, far from 0/1: units matter
    frame = pd.DataFrame({"a": a, "b": b, "c": rng.choice(["x", "y"], size=n)})
    frame["price"] = price.round(2)
    frame["fault"] = np.where(a + b > 0, "bad", "ok")
    frame["grade"] = rng.integers(0, 4, size=n)  # an integer column: classes unless declared
    path = tmp_path_factory.mktemp("reg") / "t.csv"
    frame.to_csv(path, index=False)
    planted = frame.copy()
    planted.loc[list(PLANTED), "price"] += 10 * frame["price"].std()
    planted_path = path.with_name("planted.csv")
    planted.to_csv(planted_path, index=False)
    return path, planted_path


def _fit(runner, *args):
    return runner.invoke(app, ["fit", *map(str, args), "--epochs", "8"])


def test_auto_rule_trains_a_continuous_column_as_a_regression_and_says_so(table):
    path, _ = table
    data = load_targets(str(path), target="price")
    assert isinstance(data, MultiTargetDataset) and data.tasks[0].kind == "regression"
    assert data.targets["price"].dtype == torch.float32
    grade = load_targets(str(path), target="grade")  # integers: classes, as before
    assert not isinstance(grade, MultiTargetDataset) and grade.num_classes == 4
    forced = load_targets(str(path), target="grade", kinds={"grade": "regression"})
    assert isinstance(forced, MultiTargetDataset) and forced.tasks[0].kind == "regression"
    with pytest.raises(DataError, match="not the target"):
        load_targets(str(path), target="price", kinds={"prise": "regression"})


def test_standardisation_uses_training_rows_and_the_model_answers_in_original_units(table):
    path, _ = table
    data = load_targets(str(path), target="fault,price")
    train = np.arange(100)
    scaled = with_target_scales(data, train)
    mean, std = scaled.task("price").scale
    assert mean == pytest.approx(float(data.targets["price"][:100].double().mean()), rel=1e-6)
    assert std == pytest.approx(float(data.targets["price"][:100].double().std()), rel=1e-6)
    assert scaled.task("fault").scale is None
    model = TaskHeads(MLP(3, 3, hidden=(8,)), {"fault": 2, "price": 1}, {"price": (mean, std)})
    x = torch.randn(5, 3)
    assert torch.allclose(model(x)["price"], model.trunk(x)[:, 2:] * std + mean)
    assert torch.equal(model(x)["fault"], model.trunk(x)[:, :2])
    y = torch.randn(7) * std + mean
    pred = torch.randn(7) * std + mean
    standardised = torch.nn.functional.mse_loss((pred - mean) / std, (y - mean) / std)
    assert StandardisedMSE(std)(pred.unsqueeze(1), y) == pytest.approx(float(standardised), rel=1e-5)


def test_cli_fit_price_auto_reports_mae_r2_in_original_units_and_predicts_them(table, tmp_path):
    path, _ = table
    runner = CliRunner()
    out = tmp_path / "run"
    result = _fit(runner, path, "--target", "price", "--ignore", "fault,grade", "--out", out)
    assert result.exit_code == 0, result.output
    assert "'price' trained as a regression (auto" in result.output
    final = next(r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "val_final")
    price = pd.read_csv(path)["price"]
    # A linear target with 3 % noise: R^2 well above 0 and the MAE far below the target's spread,
    # in the target's units (an MAE in standard deviations would be < 1 whatever the fit).
    assert final["val_r2/price"] > 0.5
    assert 1.0 < final["val_mae/price"] < 0.5 * price.std()
    predicted = runner.invoke(app, ["predict", str(out), str(path), "--out", str(tmp_path / "p.csv")])
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["row", "predicted_price"]
    assert abs(frame["predicted_price"].mean() - price.mean()) < 0.25 * price.std()


def test_cli_mixed_class_and_regression_targets_from_yaml(table, tmp_path):
    path, _ = table
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  target: [fault, grade]\n  task_kinds: {grade: regression}\n  ignore: [price]\n")
    runner = CliRunner()
    out = tmp_path / "run"
    result = _fit(runner, path, "--config", config, "--out", out)
    assert result.exit_code == 0, result.output
    records = read_metrics(out / "metrics.jsonl")
    epoch = [r for r in records if r["kind"] == "epoch"][-1]
    assert {"val_accuracy/fault", "val_mae/grade"} <= set(epoch)
    assert "val_r2/grade" in next(r for r in records if r["kind"] == "val_final")
    predicted = runner.invoke(app, ["predict", str(out), str(path), "--out", str(tmp_path / "p.csv")])
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(tmp_path / "p.csv")
    assert {"predicted_fault", "prob_fault_bad", "predicted_grade"} <= set(frame.columns)
    assert frame["predicted_grade"].dtype == float and set(frame["predicted_fault"]) <= {"bad", "ok"}


def test_cli_diagnose_a_regression_target_flags_planted_values_and_says_which_checks_apply(table, tmp_path):
    _, planted = table
    runner = CliRunner()
    out = tmp_path / "diag"
    result = runner.invoke(app, ["diagnose", str(planted), "--target", "price", "--regression", "price",
                                 "--ignore", "fault,grade", "--out", str(out), "--epochs", "8"])
    assert result.exit_code == 0, result.output
    assert "(regression)" in result.output and "do not apply to a regression target" in result.output
    issues = pd.read_csv(out / "sample_issues.csv")
    flagged = set(issues.loc[issues["is_label_issue_price"], "index"])
    assert set(PLANTED) <= flagged and len(flagged) < 15


@pytest.mark.parametrize(("command", "words"), [
    (["repair", "--target", "price"], ("repair relabels class columns", "'price'")),
    (["lr-find", "--target", "price"], ("lr-find", "regression target")),
    (["fit", "--target", "price", "--regression", "price", "--classify", "price"], ("choose one",)),
    (["fit", "--target", "price", "--regression", "prise"], ("'prise'", "not the target")),
])
def test_cli_refusals_are_one_clear_line(table, tmp_path, command, words):
    path, _ = table
    result = CliRunner().invoke(app, [command[0], str(path), *command[1:], "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert all(w in result.output for w in words), result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
