"""Ambiguous samples: consistently split between two classes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

# What "split between two classes" means: the runner-up gets at least half the
# probability of the winner, and the third class at most half of the runner-up's (else
# the sample is uncertain among many classes, not torn between two). Ratios, so the
# rule reads the same for any number of classes.
RUNNER_UP_RATIO = 0.5


def ambiguity(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score (1 - runner-up/winner; low = ambiguous), flag, and the two classes."""
    order = np.argsort(-probs, axis=1)
    rows = np.arange(len(probs))
    top, second = order[:, 0], order[:, min(1, probs.shape[1] - 1)]
    p1, p2 = probs[rows, top], probs[rows, second]
    p3 = probs[rows, order[:, 2]] if probs.shape[1] > 2 else np.zeros(len(probs))
    ratio = np.where(p1 > 0, p2 / np.maximum(p1, 1e-12), 0.0)
    flag = (ratio >= RUNNER_UP_RATIO) & (p3 <= RUNNER_UP_RATIO * p2)
    return np.clip(1.0 - ratio, 0.0, 1.0), flag, top, second


@register_check("ambiguous", kind="samples", requires=("train", "pred_probs"))
def ambiguous(evidence: Evidence) -> CheckResult:
    """Samples the model keeps splitting between two classes over the early-learning window."""
    data = evidence.train
    score, flag, top, second = ambiguity(np.asarray(evidence.pred_probs, dtype=np.float64))
    table = pd.DataFrame({"index": data.index.numpy(), "score": score, "flag": flag, "class_a": top, "class_b": second})
    findings = []
    if flag.any():
        pairs = pd.Series(list(zip(top[flag].tolist(), second[flag].tolist(), strict=True))).map(lambda p: tuple(sorted(p)))
        common = pairs.value_counts().head(3)
        decode = data.encoder.decode
        findings.append(Finding(
            check="ambiguous", severity=Severity.INFO, subject="dataset",
            message=f"{int(flag.sum())} samples are split between two classes; most often "
            + ", ".join(f"{decode([a])[0]!r}/{decode([b])[0]!r} ({n})" for (a, b), n in common.items()),
            evidence={"flagged": int(flag.sum())},
            suggestion="check whether those classes are well defined; ambiguous samples may need a second annotator",
        ))
    return CheckResult(check="ambiguous", findings=findings, samples=table)
