"""Each sample and dataset check on small synthetic data whose defects are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import Evidence, Severity, get_check, run_checks
from trainground.diagnosis.confident_learning import (
    confident_joint,
    prune_by_noise_rate,
)
from trainground.diagnosis.sample_curves import learning_curve_summary
from trainground.diagnosis.sample_issues import sample_issues_table


def blobs(n_per_class=60, classes=3, dims=5, seed=0, spread=0.6):
    """Well-separated Gaussian blobs; returns features, true labels and class centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)) * 6
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dims)) * spread
    return x, y, centres


def dataset(x, y, classes=("a", "b", "c")):
    return IndexedDataset(
        features=torch.tensor(x, dtype=torch.float32), labels=torch.tensor(y, dtype=torch.long),
        index=torch.arange(len(y)) + 100, encoder=LabelEncoder(tuple(classes)), kind="table", name="blobs",
    )


def oracle_probs(x, centres, temperature=4.0):
    """A model that learned the true classes: softmax of negative squared distances to the centres."""
    d = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    z = -d / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_label_issues_finds_flipped_labels_and_suggests_the_true_class():
    x, y, centres = blobs()
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(y), 18, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, len(flipped))) % 3
    evidence = Evidence(train=dataset(x, noisy), pred_probs=oracle_probs(x, centres), embeddings=x)
    result = get_check("label_issues").fn(evidence)
    table = result.samples
    flagged = set(table.loc[table["flag"], "index"] - 100)
    assert flagged == set(flipped.tolist())
    assert (table.loc[table["flag"], "suggested_label"].to_numpy() == y[np.sort(flipped)]).all()
    assert table["score"].between(0, 1).all()
    assert table.loc[table["flag"], "score"].max() < table.loc[~table["flag"], "score"].min()
    assert result.findings and result.findings[0].severity == Severity.WARNING


def test_label_issues_stays_silent_on_clean_labels():
    x, y, centres = blobs(seed=3)
    result = get_check("label_issues").fn(Evidence(train=dataset(x, y), pred_probs=oracle_probs(x, centres), embeddings=x))
    assert not result.samples["flag"].any()
    assert not result.findings


def test_confident_joint_counts_the_confident_off_diagonal():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    joint = confident_joint(labels, probs)
    np.testing.assert_allclose(joint, [[2, 1], [0, 3]])
    assert prune_by_noise_rate(labels, probs).tolist() == [False, False, True, False, False, False]


def test_outliers_flags_far_points_only():
    x, y, _ = blobs(seed=4)
    far = np.random.default_rng(5).normal(size=(4, x.shape[1])) * 2 + 60
    x2, y2 = np.vstack([x, far]), np.concatenate([y, [0, 1, 2, 0]])
    result = get_check("outliers").fn(Evidence(train=dataset(x2, y2)))
    flagged = set(result.samples.loc[result.samples["flag"], "index"] - 100)
    assert set(range(len(y), len(y2))) <= flagged
    assert len(flagged) <= 6  # the bulk is almost never flagged
    assert result.samples["score"].between(0, 1).all()


def test_near_duplicates_finds_exact_and_near_copies_and_label_conflicts():
    x, y, _ = blobs(seed=6)
    n = len(y)
    rng = np.random.default_rng(7)
    exact = x[[3, 50]]
    near = x[[70, 130]] + rng.normal(size=(2, x.shape[1])) * 1e-4
    x2 = np.vstack([x, exact, near])
    y2 = np.concatenate([y, [y[3], y[50]], [y[70], (y[130] + 1) % 3]])  # the last copy has another label
    table = get_check("near_duplicates").fn(Evidence(train=dataset(x2, y2))).samples
    flagged = set(table.loc[table["flag"], "index"] - 100)
    assert {3, 50, 70, 130, n, n + 1, n + 2, n + 3} <= flagged
    assert len(flagged) <= 10
    assert table.loc[table["index"] == 100 + n, "score"].item() == 0.0
    conflicts = set(table.loc[table["conflicting_label"], "index"] - 100)
    assert conflicts == {130, n + 3}


def test_ambiguous_flags_samples_split_between_two_classes():
    x, y, centres = blobs(n_per_class=10, seed=8)
    probs = oracle_probs(x, centres)
    probs[[0, 5]] = [[0.5, 0.45, 0.05], [0.05, 0.42, 0.53]]
    probs[7] = [0.4, 0.3, 0.3]  # unsure among three: not "split between two"
    table = get_check("ambiguous").fn(Evidence(train=dataset(x, y), pred_probs=probs)).samples
    assert set(table.loc[table["flag"], "index"] - 100) == {0, 5}


def test_class_imbalance_reports_the_small_class_only():
    x, y, _ = blobs(n_per_class=40, seed=9)
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1), np.flatnonzero(y == 2)[:2]])
    findings = get_check("class_imbalance").fn(Evidence(train=dataset(x[keep], y[keep]))).findings
    assert [f.subject for f in findings] == ["class:c"]
    assert findings[0].severity == Severity.ERROR  # 2 of an even share of 27.3
    assert not get_check("class_imbalance").fn(Evidence(train=dataset(x, y))).findings


def test_underperforming_groups_finds_the_cluster_the_model_gets_wrong():
    x, y, centres = blobs(n_per_class=60, classes=4, seed=10)
    probs = oracle_probs(x, centres)
    bad = np.flatnonzero(y == 3)
    probs[bad] = np.roll(probs[bad], 1, axis=1)  # the model is wrong on the whole of class 3
    findings = get_check("underperforming_groups").fn(
        Evidence(train=dataset(x, y, classes=("a", "b", "c", "d")), pred_probs=probs)
    ).findings
    assert findings
    for f in findings:
        assert set(f.evidence["indices"]) <= set((bad + 100).tolist())
    healthy = get_check("underperforming_groups").fn(
        Evidence(train=dataset(x, y, classes=("a", "b", "c", "d")), pred_probs=oracle_probs(x, centres))
    ).findings
    assert not healthy


def test_sample_issues_table_has_the_documented_columns_in_original_label_values():
    x, y, centres = blobs(n_per_class=20, seed=11)
    noisy = y.copy()
    noisy[0] = 2
    data = dataset(x, noisy, classes=("cat", "dog", "emu"))
    evidence = Evidence(train=data, pred_probs=oracle_probs(x, centres), embeddings=x)
    results, _ = run_checks(evidence, kind="samples")
    table = sample_issues_table(results, data, predicted=np.asarray(noisy))
    assert list(table.columns) == [
        "index", "given_label", "predicted_label", "suggested_label", "is_label_issue", "label_score",
        "is_outlier_issue", "outlier_score", "is_near_duplicate_issue", "near_duplicate_score",
        "is_ambiguous_issue", "ambiguous_score",
    ]
    row = table.iloc[0]
    assert (row["index"], row["given_label"], row["suggested_label"], row["is_label_issue"]) == (100, "emu", "cat", True)
    assert set(table["given_label"]) == {"cat", "dog", "emu"}


def test_learning_curve_summary_counts_forgetting_and_averages_the_window():
    records = pd.DataFrame({
        "index": [1, 1, 1, 1, 2, 2, 2, 2], "epoch": [0, 1, 2, 3] * 2, "split": 0,
        "margin": [1.0, -1.0, 2.0, -0.5, -1.0, 1.0, 1.0, 1.0], "prob_given": [0.6, 0.2, 0.8, 0.4, 0.1, 0.5, 0.7, 0.9],
    })
    out = learning_curve_summary(records, last_epoch=1)
    assert out.loc[1, "forgetting_events"] == 2 and out.loc[2, "forgetting_events"] == 0
    assert out.loc[1, "aum"] == 0.0 and out.loc[2, "aum"] == 0.0
    assert np.isclose(out.loc[1, "confidence"], 0.4) and np.isclose(out.loc[1, "variability"], 0.2)


def test_sample_issues_table_names_image_files_and_predicts_unlabelled_rows():
    from dataclasses import replace

    from trainground.diagnosis.sample_issues import with_unlabelled

    x, y, centres = blobs(n_per_class=20, seed=11)
    data = replace(dataset(x, y, classes=("cat", "dog", "emu")), kind="image",
                   sources=tuple(f"{'cde'[c]}/img{i}.png" for i, c in enumerate(y)))
    evidence = Evidence(train=data, pred_probs=oracle_probs(x, centres), embeddings=x)
    results, _ = run_checks(evidence, kind="samples")
    table = sample_issues_table(results, data, predicted=np.asarray(y))
    assert list(table.columns[:5]) == ["index", "source", "given_label", "predicted_label", "suggested_label"]
    assert table["source"].iloc[3] == data.sources[3]
    # rows without a label (input rows 0 and 500) are added in input order, predicted, never flagged
    unl = replace(data, unlabelled=torch.zeros(2, 5), unlabelled_index=torch.tensor([0, 500]))
    merged = with_unlabelled(table.drop(columns="source"), unl, np.array([2, 1]))
    assert merged["index"].tolist() == [0, *table["index"].tolist(), 500]
    assert merged["predicted_label"].iloc[0] == "emu" and merged["suggested_label"].iloc[-1] == "dog"
    assert pd.isna(merged["given_label"].iloc[0]) and not merged["is_label_issue"].iloc[[0, -1]].any()
    assert merged["is_label_issue"].dtype == bool


def test_a_label_the_probabilities_rank_first_is_never_flagged():
    """Weak probabilities (near the prior): the calibrated joint's counts exceed the rows that
    prefer another class, and pruning by margin used to reach rows labelled as predicted."""
    from trainground.diagnosis.confident_learning import prune_by_noise_rate

    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.27).astype(int)          # 27 % class 1
    p1 = np.clip(0.27 + 0.08 * rng.standard_normal(1000), 0.01, 0.99)
    probs = np.c_[1 - p1, p1]
    flag = prune_by_noise_rate(labels, probs)
    assert flag.any()
    assert not (flag & (probs.argmax(1) == labels)).any()
    tie = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.1, 0.9]])
    assert not prune_by_noise_rate(np.array([0, 1, 1, 0]), tie)[:2].any()  # a tie keeps the given label
