"""The console summary printed at the end of every CLI command: the same headline and the
same top findings as the report's summary (both come from :func:`summarize`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from trainground.diagnosis.findings import Severity
from trainground.report.model import RepairReport, Report
from trainground.report.summary import summarize

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def print_report_summary(report: Report, console: Console | None = None, *, report_path: str | Path | None = None) -> None:
    """One panel: outcome rows, the top findings with their suggestions, and the report's path.

    Args:
        report: from :func:`trainground.report.read_report`.
        console: where to print (a new stdout console when None).
        report_path: the ``report.html`` written, or None when none was (``fit``).
    """
    console = console or Console()
    summary = summarize(report)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")  # paths must stay whole to be copied
    for label, text in summary.outcome:
        grid.add_row(label, text)
    if summary.findings:
        grid.add_row("", "")
        for i, f in enumerate(summary.findings, 1):
            grid.add_row(f"finding {i}", f"[{_STYLE[f.severity]}]{f.severity.value}[/] {f.message} [dim]({f.check})[/]")
            if f.suggestion:
                grid.add_row("", f"[dim]-> {f.suggestion}[/]")
    elif not _has_findings_file(report):
        grid.add_row("findings", "[dim]findings.json missing[/]")
    else:
        grid.add_row("findings", "[green]the checks found nothing[/]")
    grid.add_row("", "")
    if report_path is not None:
        grid.add_row("report", str(report_path))
    else:
        grid.add_row("report", f"trainground report {report.path}")
    border = _STYLE.get(summary.worst, "green") if summary.worst is not None else "green"
    console.print(Panel(grid, title=f"summary: {summary.title}", title_align="left", border_style=border.split()[-1]))


def _has_findings_file(report: Report) -> bool:
    run = report.round_0 if isinstance(report, RepairReport) else report
    return run is not None and run.findings is not None
