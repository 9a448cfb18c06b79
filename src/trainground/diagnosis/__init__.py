"""Evidence -> findings: checks registered by name, each returning a ``CheckResult``."""

from trainground.diagnosis.callback import DiagnosisCallback, DiagnosisConfig
from trainground.diagnosis.console import print_findings
from trainground.diagnosis.early_learning import EarlyLearningWindow
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import (
    CheckResult,
    Finding,
    Severity,
    read_findings,
    sort_findings,
    write_findings,
)
from trainground.diagnosis.registry import (
    CheckSpec,
    available_checks,
    get_check,
    register_check,
    run_checks,
)
from trainground.diagnosis.sample_issues import sample_issues_table

__all__ = [
    "CheckResult", "CheckSpec", "DiagnosisCallback", "DiagnosisConfig", "EarlyLearningWindow", "Evidence", "Finding",
    "Severity", "available_checks", "get_check", "print_findings", "read_findings", "register_check", "run_checks",
    "sample_issues_table", "sort_findings", "write_findings",
]
