"""Reading run directories and repair folders: every file typed, missing files become notes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainground.errors import RunDirError
from trainground.report import RepairReport, RunReport, read_report


def test_reads_every_file_of_a_diagnose_run(demo_run: Path) -> None:
    report = read_report(demo_run)
    assert isinstance(report, RunReport)
    assert report.notes == []
    assert {"step", "loss", "lr", "grad_norm", "clip_threshold", "accum_k", "skipped"} <= set(report.steps.columns)
    assert report.epochs["epoch"].tolist() == list(range(len(report.epochs)))
    assert 0.0 < report.test["test_accuracy"] <= 1.0
    assert {"grad_norm", "act_mean"} <= set(report.layers["stat"].astype(str))
    assert report.findings and report.findings == sorted(report.findings, key=lambda f: -f.severity.rank)
    assert len(report.sample_issues) == 1437  # every sample of the digits minus the 20 % test split
    assert report.model_spec["name"] == "mlp" and report.classes == list(range(10))
    assert report.parameters == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_missing_and_broken_files_are_notes_not_errors(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "layers.parquet")
    (run_copy / "sample_issues.csv").unlink()
    (run_copy / "findings.json").write_text("{not json", encoding="utf-8")
    with open(run_copy / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"kind": "step", "ste')  # a torn last line of a killed run
    report = read_report(run_copy)
    assert report.layers is None and report.sample_issues is None and report.findings is None
    text = " ".join(report.notes)
    assert "layers.parquet is missing" in text and "sample_issues.csv is missing" in text
    assert "findings.json could not be read" in text and "1 unreadable line" in text
    assert report.steps is not None  # the good lines are kept


@pytest.mark.parametrize("make", [lambda p: p / "nowhere", lambda p: p, lambda p: (p / "f.txt", p / "f.txt")[1]])
def test_a_path_that_is_no_run_is_one_clear_error(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    if path.name == "f.txt":
        path.write_text("x")
    with pytest.raises(RunDirError, match=str(path)):
        read_report(path)


def test_repair_folder_reads_rounds_changes_and_both_runs(repair_folder: Path) -> None:
    report = read_report(repair_folder)
    assert isinstance(report, RepairReport)
    assert [r["round"] for r in report.rounds] == [0, 1] and report.best_round == 1
    assert report.before["test_accuracy"] == 0.90 and report.after["test_accuracy"] == 0.95
    assert len(report.changes) == int(report.round_0.sample_issues["is_label_issue"].sum())
    assert report.actions[-1]["action"] == "class_weights"
    assert report.round_0.path.name == "round_0" and report.best.path.name == "round_1"


def test_repair_folder_without_its_rounds_still_reads(repair_folder: Path) -> None:
    shutil.rmtree(repair_folder / "round_1")
    (repair_folder / "changes.csv").unlink()
    report = read_report(repair_folder)
    assert report.best is None and report.changes is None
    assert any("round_1/ is missing" in n for n in report.notes)
