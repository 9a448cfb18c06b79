"""The report: read a run directory (or a repair folder) and render one offline HTML page.

``report/`` reads what a run left on disk and never drives a run, so any run can be
re-rendered at any time (``trainground report RUN_DIR``).
"""

from trainground.report.console import print_report_summary
from trainground.report.model import RepairReport, Report, RunReport
from trainground.report.read import read_repair, read_report, read_run
from trainground.report.render import render_report, save_report, write_report
from trainground.report.summary import Summary, summarize, top_findings

__all__ = [
    "RepairReport", "Report", "RunReport", "Summary", "print_report_summary", "read_repair", "read_report", "read_run",
    "render_report", "save_report", "summarize", "top_findings", "write_report",
]
