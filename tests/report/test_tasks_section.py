"""The report's tasks-side-by-side section of a multi-target run."""

from __future__ import annotations

import pandas as pd

from trainground.report.tasks import run_tasks, task_curves, task_facts


def _frames():
    epochs = pd.DataFrame({"step": [10, 20], "epoch": [0, 1], "train_loss/a": [1.0, 0.5], "val_loss/a": [1.1, 0.7],
                           "val_accuracy/a": [0.5, 0.8], "train_loss/b": [2.0, 1.5], "val_mae/b": [0.9, 0.6],
                           "task_weight/a": [1.0, 0.8]})
    steps = pd.DataFrame({"step": range(1, 21), "loss": 1.0, "task_grad_norm/a": 1.0, "task_grad_norm/b": 2.0,
                          "task_grad_cos/a/b": [-0.2] * 5 + [0.3] * 15})
    return steps, epochs


def test_tasks_are_drawn_side_by_side_with_norms_and_cosines():
    steps, epochs = _frames()
    assert run_tasks(epochs) == ["a", "b"]
    fig = task_curves(steps, epochs)
    names = {t.name for t in fig.data}
    assert {"a (train)", "b (validation)", "a accuracy", "b mae", "a grad norm", "cos a vs b"} <= names or \
        {"a (train)", "a accuracy", "b mae", "a grad norm", "cos a vs b"} <= names
    facts = task_facts(steps, epochs)
    assert facts[0].startswith("a: ") and "loss weight 0.8" in facts[0]
    assert "25% of steps in conflict" in facts[-1]


def test_single_target_runs_have_no_task_section():
    assert task_curves(None, pd.DataFrame({"step": [1], "train_loss": [1.0]})) is None
    assert task_facts(None, None) == []


def test_a_multitarget_sample_table_is_split_per_task():
    from trainground.report.tasks import task_sample_tables

    table = pd.DataFrame({"index": [0, 1], "given_label_a": ["x", "y"], "is_label_issue_a": [True, False],
                          "label_score_a": [0.1, 0.9], "given_label_b": [1, 2], "is_label_issue_b": [False, False],
                          "label_score_b": [0.8, 0.7], "is_outlier_issue": [False, True], "outlier_score": [0.9, 0.1]})
    parts = task_sample_tables(table, ["a", "b"])
    assert list(parts["a"].columns) == ["index", "given_label", "is_label_issue", "label_score", "is_outlier_issue",
                                        "outlier_score"]
    assert parts["b"]["given_label"].tolist() == [1, 2]
    assert task_sample_tables(table.rename(columns={"given_label_a": "given_label"}), ["a"]) == {}


def test_per_modality_gradient_norms_are_drawn_and_summarised():
    steps, epochs = _frames()
    steps["group_grad_norm/image"] = [float(i) for i in range(1, 21)]
    steps["group_grad_norm/text"] = 0.5
    names = {t.name for t in task_curves(steps, epochs).data}
    assert {"image (modality) grad norm", "text (modality) grad norm"} <= names
    facts = task_facts(steps, epochs)
    assert "image (modality) gradient norm: median 10.5, 90th percentile 18.1" in facts
    assert any(f.startswith("text (modality) gradient norm: median 0.5") for f in facts)
    # Without groups, no modality line.
    assert not any("modality" in f for f in task_facts(*_frames()))
