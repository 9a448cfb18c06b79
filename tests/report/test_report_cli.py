"""``trainground report RUN_DIR [--out FILE]``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from trainground.cli import app
from trainground.report import read_report, top_findings

runner = CliRunner()


def test_report_writes_the_page_and_prints_the_top_findings(demo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "page" / "r.html"
    result = runner.invoke(app, ["report", str(demo_run), "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert str(out) in result.output.replace("\n", "").replace("│", "").replace(" ", "")
    for finding in top_findings(read_report(demo_run).findings):
        assert finding.check in result.output


def test_report_default_path_is_in_the_run(run_copy: Path) -> None:
    result = runner.invoke(app, ["report", str(run_copy)])
    assert result.exit_code == 0, result.output
    assert (run_copy / "report.html").is_file()


def test_bad_run_dir_is_one_error_line_and_status_2(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        result = runner.invoke(app, ["report", str(path)])
        assert result.exit_code == 2
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and str(path) in lines[0]
        assert "Traceback" not in result.output


def test_console_summary_names_the_same_top_findings_as_the_page(demo_run: Path) -> None:
    from rich.console import Console

    from trainground.report import print_report_summary, render_report

    report = read_report(demo_run)
    console = Console(record=True, width=300)
    print_report_summary(report, console, report_path=demo_run / "report.html")
    text = console.export_text()
    page = render_report(report)
    summary = page[page.index('id="summary"'):page.index('id="run-training"')]
    top = top_findings(report.findings)
    assert top
    for i, finding in enumerate(top, 1):
        assert f"finding {i}" in text and finding.message in text
        assert finding.message.replace("'", "&#39;") in summary
    assert "finding 4" not in text


def test_diagnose_writes_the_report_and_prints_its_path(iris_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "diag"
    result = runner.invoke(app, ["diagnose", str(iris_csv), "--target", "species", "--out", str(out), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    page = out / "report.html"
    assert page.is_file() and "report.html" in result.output
    assert "sample_issues.csv" in page.read_text(encoding="utf-8")
