"""Label issues: samples whose given label is probably wrong, found from one training run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.competence import MIN_SKILL, Competence
from trainground.diagnosis.confident_learning import prune_by_noise_rate
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.label_probs import label_issue_probs
from trainground.diagnosis.neighbors import neighbor_search_method
from trainground.diagnosis.registry import register_check
from trainground.diagnosis.sample_curves import learning_curve_summary


@register_check("label_issues", kind="samples", requires=("train", "pred_probs"))
def label_issues(evidence: Evidence) -> CheckResult:
    """Samples whose given label is probably wrong (score = estimated probability of the given label).

    Flags by confident learning (per-class thresholds, confident joint, prune by the
    estimated noise rate) applied to :func:`label_issue_probs`, so the number flagged
    comes from the data, not from a known noise rate. The suggested label is the most
    probable class. AUM, forgetting events and cartography confidence/variability of
    each sample are reported alongside (columns ``aum``, ``forgetting_events``,
    ``confidence``, ``variability``) when per-epoch records are available.

    The finding states the model's competence on the validation split when the run
    measured it (``evidence.extra["competence"]``, ``diagnosis.competence``: the same
    measure and threshold as the repair's relabel gate). A flag is a disagreement between
    the model and the given label; below :data:`~trainground.diagnosis.competence.MIN_SKILL`
    the model's own confusions explain such disagreements as well as wrong labels do, and
    the finding says so. Which rows are flagged and their scores never depend on it.

    References:
        Northcutt et al., "Confident Learning", JAIR 2021; Pleiss et al., "AUM", NeurIPS 2020;
        Toneva et al., "An Empirical Study of Example Forgetting", ICLR 2019;
        Swayamdipta et al., "Dataset Cartography", EMNLP 2020.
    """
    data = evidence.train
    labels = data.labels.numpy()
    index = data.index.numpy()
    pred_probs = np.asarray(evidence.pred_probs)
    if pred_probs.dtype not in (np.float32, np.float64):
        pred_probs = pred_probs.astype(np.float64)
    probs = label_issue_probs(labels, pred_probs, evidence.embeddings, cache=evidence.neighbors)
    flag = prune_by_noise_rate(labels, probs)
    score = np.clip(probs[np.arange(len(labels)), labels], 0.0, 1.0)
    table = pd.DataFrame({
        "index": index, "score": score, "flag": flag, "given_label": labels,
        "suggested_label": np.where(flag, probs.argmax(axis=1), labels),
    })
    if evidence.samples is not None and len(evidence.samples):
        window = evidence.extra.get("early_learning_epoch")
        curves = learning_curve_summary(evidence.samples, last_epoch=window)
        table = table.merge(curves, how="left", left_on="index", right_index=True)
    n_flag = int(flag.sum())
    findings = []
    if n_flag:
        share = n_flag / len(labels)
        worst = table.sort_values("score").head(10)["index"].tolist()
        message = f"{n_flag} of {len(labels)} samples ({share:.1%}) probably carry a wrong label"
        suggestion = ("review the flagged rows of sample_issues.csv (sorted by label_score); relabel them to "
                      "suggested_label or drop them, then retrain")
        facts = {"flagged": n_flag, "share": share, "worst_indices": worst,
                 "neighbor_search": neighbor_search_method(len(labels)) if evidence.embeddings is not None else None,
                 "neighbor_index": evidence.neighbors.described("embeddings", metric="cosine")}
        competence = evidence.extra.get("competence")
        if isinstance(competence, Competence):
            facts.update(competence.figures(), model_competent=competence.skilled)
            if not competence.skilled:
                message, suggestion = _weak_model(n_flag, len(labels), share, competence, facts)
        findings.append(Finding(
            check="label_issues", severity=Severity.WARNING if share >= 0.01 else Severity.INFO, subject="dataset",
            message=message, evidence=facts, suggestion=suggestion,
        ))
    return CheckResult(check="label_issues", findings=findings, samples=table)


def _weak_model(n_flag: int, n: int, share: float, competence: Competence, facts: dict) -> tuple[str, str]:
    """The message and suggestion of a finding whose model is below the competence threshold."""
    if competence.majority < 1.0:
        # If every flagged label were wrong (the validation rows as noisy as the flagged share),
        # a model that is always right would measure this skill: the two readings side by side.
        perfect = (1.0 - share - competence.majority) / (1.0 - competence.majority)
        facts["perfect_model_skill_if_flags_wrong"] = round(perfect, 4)
        both = (f"; if all flagged labels were wrong, a model that is always right would measure skill "
                f"{perfect:.2f}, so many wrong labels and a task this model cannot learn look the same here")
    else:
        both = "; many wrong labels and a task this model cannot learn look the same here"
    message = (f"{n_flag} of {n} samples ({share:.1%}) are flagged as possible wrong labels, but the model is too weak "
               f"for its flags to tell wrong labels from its own confusions: validation accuracy "
               f"{100 * competence.accuracy:.1f} % against {100 * competence.majority:.1f} % for always predicting "
               f"the most frequent class (skill {competence.skill:.2f} < {MIN_SKILL}){both}")
    suggestion = ("get a stronger model first (more epochs, capacity, better features; see the lr_too_low and "
                  "plateau findings, if any), or a validation set with checked labels, then diagnose again; review "
                  "the top flags of sample_issues.csv by hand before relabelling or dropping any")
    return message, suggestion
