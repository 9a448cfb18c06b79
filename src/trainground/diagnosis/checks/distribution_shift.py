"""Distribution shift between the training split and the validation/test splits."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from trainground.diagnosis.checks._common import fmt
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "distribution_shift"
# Family-wise significance level for each split comparison, Bonferroni-corrected over the
# features for the KS tests (a random split then raises a false alarm < 1 % of the time).
ALPHA = 0.01
# Effect sizes, a priori: a domain classifier AUC of 0.6 is the smallest separation worth
# acting on; 0.8 means the splits are easy to tell apart (error). PSI >= 0.25 is the usual
# "major shift" rule of credit scoring (Siddiqi 2006), reported as evidence.
AUC_WARNING = 0.6
AUC_ERROR = 0.8
PSI_MAJOR = 0.25
TOP_FEATURES = 5
# Rows per split fed to the domain classifier (its cost is linear in them).
MAX_ROWS = 5000


def psi(reference: np.ndarray, other: np.ndarray, bins: int = 10) -> float:
    """Population stability index over decile bins of ``reference``."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size < 3:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(reference, edges)[0] / reference.size + 1e-4
    q = np.histogram(other, edges)[0] / max(other.size, 1) + 1e-4
    return float(np.sum((q - p) * np.log(q / p)))


def domain_classifier_test(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Out-of-fold AUC of a logistic regression telling ``b`` rows from ``a`` rows, its one-sided
    Mann-Whitney p-value, and the absolute coefficients (per standardised feature).

    References:
        Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=500))
    folds = StratifiedKFold(n_splits=min(5, int(min(len(a), len(b)))), shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    test = stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
    auc = float(test.statistic / (np.sum(y == 1) * np.sum(y == 0)))
    coef = np.abs(model.fit(x, y)[-1].coef_[0])
    return auc, float(test.pvalue), coef


# Rows of each split a streamed feature store contributes to the tests: enough for a KS
# test to see a 0.03 shift in a feature's distribution (its critical D at alpha 0.05 for
# two samples of 5,000 is 1.36 sqrt(2 / 5000) = 0.027).
STREAMED_SAMPLE = 5_000


def _features(data: Any) -> tuple[np.ndarray, list[str]]:
    x = getattr(data, "features", None)
    if x is None:
        raise ValueError("the dataset has no .features")
    if hasattr(x, "take_rows"):  # a store decoded on indexing (a streamed image folder)
        # A seeded random sample of the rows: the tests stay valid for the split (with less
        # power) and memory stays at the sample's, not the dataset's, pixels.
        rows = np.sort(np.random.default_rng(0).permutation(len(x))[:STREAMED_SAMPLE])
        x = x[rows]
    x = (x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).reshape(len(x), -1).astype(np.float64)
    schema = getattr(data, "schema", None)
    names = list(getattr(schema, "feature_names", ()) or ())
    if len(names) != x.shape[1]:
        names = [f"x{i}" for i in range(x.shape[1])]
    return x, names


def _predicted_distribution(model: Any, x: np.ndarray, shape: tuple[int, ...], classes: int) -> np.ndarray | None:
    if model is None or classes < 2:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counts = np.zeros(classes)
    try:
        with torch.no_grad():
            for start in range(0, len(x), 1024):
                batch = torch.as_tensor(x[start : start + 1024], dtype=torch.float32).reshape(-1, *shape).to(device)
                counts += np.bincount(model(batch).argmax(1).cpu().numpy(), minlength=classes)[:classes]
    finally:
        model.train(was_training)
    return counts


def compare(train: Any, other: Any, split: str, model: Any) -> Finding | None:
    """One finding for ``other`` against ``train`` (None when nothing shifts)."""
    a, names = _features(train)
    b, _ = _features(other)
    rng = np.random.default_rng(0)
    if len(a) > MAX_ROWS:
        a = a[rng.choice(len(a), MAX_ROWS, replace=False)]
    if len(b) > MAX_ROWS:
        b = b[rng.choice(len(b), MAX_ROWS, replace=False)]
    if len(a) < 10 or len(b) < 10:
        return None
    varying = np.flatnonzero(np.ptp(np.concatenate([a, b]), axis=0) > 0)
    ks = stats.ks_2samp(a[:, varying], b[:, varying], axis=0)
    d_stat, p_ks = np.atleast_1d(ks.statistic), np.atleast_1d(ks.pvalue)
    p_adj = np.minimum(p_ks * max(len(varying), 1), 1.0)
    psis = np.array([psi(a[:, j], b[:, j]) for j in varying])
    auc, p_domain, coef = domain_classifier_test(a[:, varying], b[:, varying])
    shifted = varying[p_adj < ALPHA]
    domain_shift = p_domain < ALPHA and auc >= AUC_WARNING
    order = np.argsort(-d_stat)[:TOP_FEATURES]
    top = [{"feature": names[varying[j]], "ks": float(d_stat[j]), "p_adjusted": float(p_adj[j]),
            "psi": float(psis[j]), "domain_weight": float(coef[j])} for j in order]
    numbers: dict[str, Any] = {
        "split": split, "domain_auc": auc, "domain_p": p_domain, "features_tested": len(varying),
        "features_shifted": len(shifted), "features_psi_major": int((psis >= PSI_MAJOR).sum()),
        "top_features": top, "alpha": ALPHA,
    }
    classes = int(getattr(train, "num_classes", 0) or 0)
    shape = tuple(train.features.shape[1:])
    pa = _predicted_distribution(model, a, shape, classes)
    pb = _predicted_distribution(model, b, shape, classes)
    label_shift = False
    if pa is not None and pb is not None:
        p = (pa + 0.5) / (pa + 0.5).sum()
        q = (pb + 0.5) / (pb + 0.5).sum()
        keep = (pa + pb) > 0
        chi = stats.chi2_contingency(np.stack([pa[keep], pb[keep]])) if keep.sum() >= 2 else None
        numbers.update(prediction_kl=float(np.sum(q * np.log(q / p))),
                       prediction_p=float(chi.pvalue) if chi is not None else 1.0)
        label_shift = chi is not None and chi.pvalue < ALPHA
    if not (domain_shift or len(shifted) or label_shift):
        return None
    if domain_shift or len(shifted):
        severity = Severity.ERROR if auc >= AUC_ERROR else Severity.WARNING
        named = ", ".join(f"{t['feature']} (KS {fmt(t['ks'])})" for t in top[: max(1, min(len(shifted), 3))])
        message = (f"the {split} split differs from the training split: a classifier tells them apart with AUC "
                   f"{fmt(auc)} (p={fmt(p_domain)}); {len(shifted)} feature(s) shift significantly, most: {named}")
        subject = f"feature:{top[0]['feature']}"
    else:
        severity = Severity.INFO
        message = (f"the model predicts a different class mix on {split} than on train "
                   f"(KL {fmt(numbers['prediction_kl'])}, p={fmt(numbers['prediction_p'])})")
        subject = f"split:{split}"
    return Finding(
        check=NAME, severity=severity, subject=subject, message=message, evidence=numbers,
        suggestion=(f"compare how {split} was collected with the training data (units, sensors, time); make the "
                    "splits come from the same distribution, or standardise/recompute the shifted features"),
    )


@register_check(NAME, kind="dataset", requires=("train",))
def distribution_shift(evidence: Evidence) -> CheckResult:
    """Per-feature KS/PSI, a domain-classifier two-sample test and the predicted-class KL, train vs val/test."""
    result = CheckResult(NAME)
    for split in ("val", "test"):
        other = getattr(evidence, split)
        if other is None:
            continue
        finding = compare(evidence.train, other, split, evidence.model)
        if finding is not None:
            result.findings.append(finding)
    return result
