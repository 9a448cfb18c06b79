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
