"""Findings on the terminal: one rich table, most severe first."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from trainground.diagnosis.findings import Finding, Severity, sort_findings

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def print_findings(
    findings: Sequence[Finding], *, console: Console | None = None, limit: int | None = 10,
    min_severity: Severity = Severity.INFO, title: str = "Findings",
) -> None:
    """Print the ``limit`` most important findings at or above ``min_severity`` (None = all)."""
    console = console or Console()
    shown = [f for f in sort_findings(list(findings)) if f.severity >= min_severity]
    if not shown:
        console.print(f"[green]{title}: nothing at or above {min_severity.value}.[/green]")
        return
    table = Table(title=title, show_lines=True)
    for column in ("severity", "check", "subject", "what", "suggestion"):
        table.add_column(column, overflow="fold")
    for f in shown[:limit]:
        table.add_row(f"[{_STYLE[f.severity]}]{f.severity.value}[/]", f.check, f.subject, f.message, f.suggestion)
    console.print(table)
    if limit is not None and len(shown) > limit:
        console.print(f"... and {len(shown) - limit} more (findings.json has them all)")
