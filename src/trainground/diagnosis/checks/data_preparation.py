"""Data preparation: what loading did to a raw table that the user did not ask for.

Not a defect found by training but a record, so that imputation, missing categories,
columns left out and rows without a label are never silent: they reach
``findings.json`` and the report as well as the console notice the loader prints.
"""

from __future__ import annotations

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "data_preparation"


@register_check(NAME, kind="dataset", requires=("train",))
def data_preparation(evidence: Evidence) -> CheckResult:
    """Missing values imputed, missing categories, columns left out, rows without a label."""
    schema = getattr(evidence.train, "schema", None)
    notes = schema.notes() if hasattr(schema, "notes") else []
    if not notes:
        return CheckResult(check=NAME, findings=[])
    numeric = {c: int(schema.missing[c]) for c in schema.numeric if schema.missing.get(c)}
    categorical = {c: int(schema.missing[c]) for c in schema.categorical if schema.missing.get(c)}
    finding = Finding(
        check=NAME, severity=Severity.INFO, subject="dataset",
        message="; ".join(notes),
        evidence={
            "imputed_numbers": numeric, "medians": {c: schema.medians[c] for c in numeric},
            "missing_categories": categorical, "left_out_columns": dict(schema.left_out),
            "unlabelled_rows": int(schema.unlabelled),
        },
        suggestion="check that the columns left out carry no signal and that imputation is sensible; "
        "pass --ignore COL,... (data.ignore) to choose the feature columns yourself",
    )
    return CheckResult(check=NAME, findings=[finding])
