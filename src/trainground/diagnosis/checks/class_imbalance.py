"""Class imbalance: classes with far fewer samples than an even share."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

# A class below half its even share (n / K) is under-represented; below a tenth, the
# model may effectively never predict it.
WARN_SHARE, ERROR_SHARE = 0.5, 0.1


@register_check("class_imbalance", kind="dataset", requires=("train",))
def class_imbalance(evidence: Evidence) -> CheckResult:
    """Classes with less than half of an even share of the samples."""
    data = evidence.train
    counts = np.bincount(data.labels.numpy(), minlength=data.num_classes)
    fair = counts.sum() / len(counts)
    findings = []
    for cls in np.flatnonzero(counts < WARN_SHARE * fair):
        share = counts[cls] / fair
        findings.append(Finding(
            check="class_imbalance", severity=Severity.ERROR if share < ERROR_SHARE else Severity.WARNING,
            subject=f"class:{data.encoder.decode([cls])[0]}",
            message=f"class {data.encoder.decode([cls])[0]!r} has {int(counts[cls])} samples, "
            f"{share:.0%} of an even share ({fair:.0f})",
            evidence={"count": int(counts[cls]), "even_share": float(fair), "largest": int(counts.max())},
            suggestion="collect more samples of this class, or weight the loss by inverse class frequency",
        ))
    return CheckResult(check="class_imbalance", findings=findings)
