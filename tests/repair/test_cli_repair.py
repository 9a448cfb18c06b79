"""``trainground repair`` on the command line: a small run, and every bad input -> one line, exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trainground.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    return result.stderr


def test_repair_writes_the_folder_and_prints_a_summary(tmp_path, iris_csv):
    before = iris_csv.read_bytes()
    out = tmp_path / "rep"
    result = invoke("repair", iris_csv, "--target", "species", "--out", out, "--test", iris_csv, "--epochs", "3",
                    "--rounds", "1", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert "validation accuracy" in result.stdout and "repair folder" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["before"]["test_accuracy"] is not None and metrics["rounds"][0]["run_dir"] == "round_0"
    assert (out / "repaired.csv").exists() and (out / "changes.csv").exists()
    assert iris_csv.read_bytes() == before
    assert sorted(p.name for p in iris_csv.parent.iterdir() if p.is_file()) == [iris_csv.name]  # nothing beside it
    again = invoke("repair", iris_csv, "--target", "species", "--out", out, "--epochs", "1", "--rounds", "0")
    assert "--overwrite" in one_error_line(again)


@pytest.mark.parametrize("case", ["missing_file", "bad_target", "out_is_input_folder", "out_is_input"])
def test_bad_input_is_one_error_line_and_nothing_is_written(tmp_path, iris_csv, case):
    before = iris_csv.read_bytes()
    source, target, out = iris_csv, "species", tmp_path / "new"
    if case == "missing_file":
        source = tmp_path / "nope.csv"
    elif case == "bad_target":
        target = "colour"
    elif case == "out_is_input_folder":
        out = iris_csv.parent
    else:
        out = iris_csv
    result = invoke("repair", source, "--target", target, "--out", out, "--epochs", "1", "--overwrite")
    message = one_error_line(result)
    assert {"missing_file": "nope.csv", "bad_target": "colour", "out_is_input_folder": "--out",
            "out_is_input": "--out"}[case] in message
    assert iris_csv.read_bytes() == before
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in iris_csv.parent.iterdir()) == [iris_csv.name]


def test_repair_cli_writes_the_report(tmp_path, iris_csv):
    out = tmp_path / "rep"
    result = invoke("repair", iris_csv, "--target", "species", "--out", out, "--epochs", "2", "--rounds", "1",
                    "--loss", "ce")
    assert result.exit_code == 0, result.stderr
    assert (out / "report.html").stat().st_size > 1000 and "report.html" in result.stdout
    assert "repair_loss: ce" in (out / "config.yaml").read_text()


def test_repair_cli_refuses_an_unknown_loss(tmp_path, iris_csv):
    result = invoke("repair", iris_csv, "--target", "species", "--out", tmp_path / "rep", "--loss", "mse")
    assert "repair_loss must be 'ce' or 'gce'" in one_error_line(result)
    assert not (tmp_path / "rep").exists()


def test_repair_takes_a_raw_table_and_keeps_rows_without_label(tmp_path):
    from pathlib import Path

    import pandas as pd

    raw = Path(__file__).parents[1] / "data" / "raw" / "chile.csv"  # rownames, missing values, 31 rows without vote
    out = tmp_path / "rep"
    result = invoke("repair", raw, "--target", "vote", "--out", out, "--epochs", "2", "--rounds", "0",
                    "--batch-size", "32", "--model", "mlp")
    assert result.exit_code == 0, result.stderr
    assert "note:" in result.stderr and "31 rows without a label" in result.stderr
    given, repaired = pd.read_csv(raw), pd.read_csv(out / "repaired.csv")
    quarantined = pd.read_csv(out / "quarantined.csv")
    assert len(repaired) + len(quarantined) == len(given)
    assert repaired["vote"].isna().sum() == given["vote"].isna().sum() == 31


def test_a_repair_that_cannot_start_leaves_no_folder(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("a,y\n1,x\n2,y\n3,x\n4,y\n")
    out = tmp_path / "out"
    result = invoke("repair", small, "--target", "y", "--out", out)
    assert result.exit_code == 2
    assert "needs at least 10" in one_error_line(result)
    assert not out.exists()
