"""Figures built from run files: what they draw, and None when the file lacks the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.report.confusion import confusion_figure, label_confusion
from trainground.report.curves import training_curves
from trainground.report.heatmaps import MAX_COLUMNS, layer_heatmap, stat_grid
from trainground.report.trajectories import (
    clipped_share,
    gradient_trajectories,
    spike_events,
)


def _steps(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    norm = rng.lognormal(size=n)
    norm[100] = np.nan  # a non-finite step the Guard skipped
    return pd.DataFrame({
        "step": np.arange(1, n + 1), "epoch": np.arange(n) // 100, "loss": rng.random(n), "lr": 1e-3,
        "grad_norm": norm, "clip_threshold": 1.0, "accum_k": np.where(np.arange(n) < 150, 1, 4),
        "skipped": np.isin(np.arange(n), [100, 200]).astype(float),
    })


def _names(fig) -> list[str]:
    return [t.name for t in fig.data]


def test_spike_events_join_metrics_and_actions() -> None:
    actions = [{"step": 250, "action": "skip"}, {"step": 201, "action": "rollback"}, {"step": 5, "action": "accumulation"}]
    events = spike_events(_steps(), actions)
    assert events.skipped.tolist() == [101, 201, 250] and events.rollbacks.tolist() == [201]


def test_gradient_figure_marks_spikes_where_they_happened() -> None:
    steps = _steps()
    fig = gradient_trajectories(steps, [{"step": 201, "action": "rollback"}])
    assert {"gradient norm", "clip threshold", "clipped share", "K", "skipped step (spike)", "rollback"} == set(_names(fig))
    marks = next(t for t in fig.data if t.name == "skipped step (spike)")
    assert list(marks.x) == [101, 201]
    finite = steps["grad_norm"].dropna()
    # the NaN norm is drawn at the top of the panel, the finite one at its value
    assert marks.y[0] == finite.max() and marks.y[1] == steps.loc[200, "grad_norm"]
    share = clipped_share(steps)
    expected = (steps["grad_norm"] > 1.0).groupby(steps["epoch"]).mean()
    np.testing.assert_allclose(share.to_numpy(), expected.to_numpy())


def test_no_guard_no_gradient_figure() -> None:
    assert gradient_trajectories(_steps().drop(columns=["grad_norm"]), None) is None
    assert gradient_trajectories(None, None) is None


def test_long_runs_are_decimated() -> None:
    steps = _steps(50_000)
    fig = gradient_trajectories(steps, None)
    norm = next(t for t in fig.data if t.name == "gradient norm")
    assert len(norm.x) <= 2002 and np.nanmax(norm.y) == np.nanmax(steps["grad_norm"])
    curves = training_curves(steps, None, None)
    assert all(len(t.x) <= 2002 for t in curves.data)


def test_training_curves_draw_what_is_there() -> None:
    epochs = pd.DataFrame({"step": [100, 200], "epoch": [0, 1], "train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.8]})
    fig = training_curves(_steps(), epochs, {"step": 200, "test_accuracy": 0.9})
    assert set(_names(fig)) == {"loss per step", "lr", "train (epoch)", "test"}
    assert training_curves(None, None, None) is None


def _layers() -> pd.DataFrame:
    rows = []
    for step in range(0, 1000, 2):
        for layer, scale in (("body.0", 1.0), ("head", 0.01)):
            rows.append((step, 0, layer, "grad_norm", scale))
    rows += [(500, 0, "body.1", "dead_fraction", 0.25), (999, 0, "body.1", "dead_fraction", 0.5)]
    return pd.DataFrame(rows, columns=["step", "epoch", "layer", "stat", "value"])


def test_layer_grid_keeps_layer_order_and_caps_columns() -> None:
    names, steps, values = stat_grid(_layers(), "grad_norm")
    assert names == ["body.0", "head"] and len(steps) == MAX_COLUMNS and values.shape == (2, MAX_COLUMNS)
    np.testing.assert_allclose(values[1], 0.01)  # bucket means of a constant are the constant
    assert stat_grid(_layers(), "no_such_stat") is None


def test_heatmaps() -> None:
    grad = layer_heatmap(_layers(), "grad_norm")
    np.testing.assert_allclose(np.asarray(grad.data[0].z)[1], -2.0)  # log10 colour
    dead = layer_heatmap(_layers(), "dead_fraction")
    assert dead.data[0].zmax == 1.0 and list(np.asarray(dead.data[0].z)[0]) == [0.25, 0.5]
    assert layer_heatmap(None, "grad_norm") is None


def test_confusion_counts_match_a_crosstab() -> None:
    rng = np.random.default_rng(1)
    given = rng.integers(0, 12, 500)
    table = pd.DataFrame({"given_label": given, "suggested_label": (given + rng.integers(0, 3, 500)) % 12,
                          "is_label_issue": rng.random(500) < 0.4})
    names, counts = label_confusion(table, classes=list(range(12)))
    assert names == [str(c) for c in range(12)]  # model order, not string order ("10" after "9")
    flagged = table[table["is_label_issue"]]
    reference = pd.crosstab(flagged["given_label"], flagged["suggested_label"]).reindex(
        index=range(12), columns=range(12), fill_value=0)
    np.testing.assert_array_equal(counts, reference.to_numpy())
    assert confusion_figure(table.assign(is_label_issue=False)) is None
    assert confusion_figure(table.drop(columns=["is_label_issue"])) is None
