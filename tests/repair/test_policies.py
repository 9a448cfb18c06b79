"""Each data policy on crafted diagnoses: it acts where the evidence says so, and only there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import Finding, Severity
from trainground.repair import RepairContext, available_policies, get_policy
from trainground.repair.competence import measure_competence

CLASSES = ("cat", "dog", "fox")


def small_data(labels, features=None) -> IndexedDataset:
    labels = np.asarray(labels)
    features = np.arange(len(labels) * 2, dtype=np.float32).reshape(-1, 2) if features is None else features
    return IndexedDataset(features=torch.as_tensor(features, dtype=torch.float32), labels=torch.as_tensor(labels),
                          index=torch.arange(100, 100 + len(labels)), encoder=LabelEncoder(CLASSES), kind="table",
                          name="t")


def context(labels, probs, flagged, suggested, *, features=None, dup_score=None, findings=(),
            competent=True) -> RepairContext:
    data = small_data(labels, features)
    probs = np.asarray(probs, dtype=float)
    decode = data.encoder.decode
    table = pd.DataFrame({
        "index": data.index.numpy(), "given_label": decode(labels), "predicted_label": decode(probs.argmax(1)),
        "suggested_label": decode(suggested), "is_label_issue": flagged,
        "label_score": probs[np.arange(len(labels)), labels],
        "is_near_duplicate_issue": np.zeros(len(labels), bool),
        "near_duplicate_score": np.ones(len(labels)) if dup_score is None else dup_score,
    })
    # A competent model (every validation row right) unless a test says otherwise.
    competence = measure_competence(np.repeat([0, 1, 2], 10), np.repeat([0, 1, 2], 10), 3) if competent else None
    return RepairContext(round=0, data=data, findings=list(findings), table=table, pred_probs=probs,
                         competence=competence)


# rows: 0 clean & confident; 1 flagged, strong evidence for dog; 2 flagged, no class >= 0.5;
# 3 not flagged but the model prefers fox; 4 flagged, model prefers dog but only 0.45.
LABELS = [0, 0, 1, 2, 0]
PROBS = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.35, 0.25, 0.4], [0.1, 0.2, 0.7], [0.3, 0.45, 0.25]]
FLAGGED = [False, True, True, False, True]
SUGGESTED = [0, 1, 2, 2, 1]


def test_relabel_only_where_the_suggested_label_holds_the_majority():
    actions = get_policy("relabel").fn(context(LABELS, PROBS, FLAGGED, SUGGESTED))
    assert [(a.action, a.target, a.value) for a in actions] == [("relabel", 101, 1)]
    assert actions[0].score == 0.1 and "'dog'" in actions[0].reason


def test_quarantine_takes_flagged_samples_without_a_trustworthy_label():
    actions = get_policy("quarantine").fn(context(LABELS, PROBS, FLAGGED, SUGGESTED))
    assert sorted(a.target for a in actions) == [102, 104]
    assert all(a.action == "quarantine" for a in actions)


def test_reweight_by_likelihood_ratio_for_unflagged_doubted_samples():
    # every unflagged row's given label is the model's favourite: nothing to weight
    assert get_policy("reweight").fn(context(LABELS, PROBS, FLAGGED, SUGGESTED)) == []
    labels = [0, 0, 1, 1, 0]  # row 3 now says dog while the model prefers fox
    (action,) = get_policy("reweight").fn(context(labels, PROBS, FLAGGED, SUGGESTED))
    assert action.action == "reweight" and action.target == 103 and np.isclose(action.value, 0.2 / 0.7)


def test_relabel_quarantine_reweight_partition_the_doubted_samples():
    ctx = context(LABELS, PROBS, FLAGGED, SUGGESTED)
    targets = [a.target for name in ("relabel", "quarantine", "reweight") for a in get_policy(name).fn(ctx)]
    assert len(targets) == len(set(targets))  # never two label decisions for one sample


def test_no_diagnosis_table_means_no_action():
    ctx = RepairContext(round=0, data=small_data([0, 1, 2]))
    for spec in available_policies("data"):
        assert spec.fn(ctx) == []


def test_rebalance_on_imbalance_finding_only():
    labels = [0] * 8 + [1] * 8 + [2] * 2
    probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    quiet = context(labels, probs, [False] * 18, labels)
    assert get_policy("rebalance").fn(quiet) == []
    finding = Finding(check="class_imbalance", severity=Severity.WARNING, subject="class:fox", message="rare",
                      evidence={})
    (action,) = get_policy("rebalance").fn(context(labels, probs, [False] * 18, labels, findings=[finding]))
    weights = np.asarray(action.value)
    assert action.action == "class_weights" and np.isclose(weights.mean(), 1.0)
    assert np.isclose(weights[2] / weights[0], 4.0)  # inverse frequency: 8 / 2


def test_drop_duplicates_keeps_the_majority_label_of_exact_copies():
    features = np.array([[1, 1], [1, 1], [1, 1], [2, 2], [2, 2], [5, 5]], dtype=np.float32)
    labels = [0, 0, 1, 2, 2, 1]
    probs = np.full((6, 3), 1 / 3)
    dup = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    actions = get_policy("drop_duplicates").fn(context(labels, probs, [False] * 6, labels, features=features, dup_score=dup))
    # rows 0-2 are copies labelled cat, cat, dog: the dog copy goes; rows 3-4 agree: untouched.
    assert [(a.action, a.target) for a in actions] == [("drop_duplicate", 102)]


def test_drop_duplicates_tie_is_broken_by_the_model():
    features = np.array([[1, 1], [1, 1]], dtype=np.float32)
    probs = np.array([[0.2, 0.7, 0.1], [0.2, 0.7, 0.1]])
    actions = get_policy("drop_duplicates").fn(
        context([0, 1], probs, [False, False], [0, 1], features=features, dup_score=np.zeros(2)))
    assert [a.target for a in actions] == [100]  # the cat copy; the model says dog


def test_flagged_label_above_chance_is_only_down_weighted():
    # flagged, but p(given) = 0.4 > 1/3 and no class reaches 0.5: uncertain, not wrong
    ctx = context([0], [[0.4, 0.45, 0.15]], [True], [1])
    assert get_policy("relabel").fn(ctx) == [] and get_policy("quarantine").fn(ctx) == []
    (action,) = get_policy("reweight").fn(ctx)
    assert np.isclose(action.value, 0.4 / 0.45)
