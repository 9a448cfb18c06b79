"""``trainground recipe faults`` end to end at tiny sizes, and its documented YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine import read_metrics
from trainground.recipes.faults import DEFAULTS, faults_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "faults.yaml"


def test_the_documented_yaml_is_the_recipe_default():
    from_file, default = faults_config(EXAMPLE), faults_config()
    assert from_file.to_dict() == default.to_dict()
    assert default.loss.events[0].when == "severity >= 4" and default.tasks.max_norm == 1.0
    assert DEFAULTS["data"]["target"] == ["fault", "severity"]


def test_recipe_faults_smoke(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["recipe", "faults", "--out", str(out), "--samples", "200", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sample_issues.csv")
    assert {"is_label_issue_fault", "is_label_issue_severity", "given_label_fault"} <= set(table.columns)
    records = read_metrics(out / "metrics.jsonl")
    step = next(r for r in records if r["kind"] == "step")
    assert {"loss/fault", "loss/severity", "task_grad_norm/fault", "task_grad_cos/fault/severity",
            "task_clip_scale/severity"} <= set(step)
    test = [r for r in records if r["kind"] == "test"][0]
    assert "test_macro_f1/fault" in test and "test_rare_recall/fault" in test
    assert "Tasks side by side" in (out / "report.html").read_text()
    assert json.loads((out / "findings.json").read_text()) is not None
    assert "faults recipe outcome" in result.output


def test_recipe_faults_refuses_a_single_target(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: 'builtin:faults', target: fault}\n")
    result = CliRunner().invoke(app, ["recipe", "faults", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "two or more columns" in result.output
