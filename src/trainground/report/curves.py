"""Training curves: loss, accuracy and learning rate against the optimizer step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainground.report.downsample import minmax_indices
from trainground.report.style import BLUE, GREEN, GREY, ORANGE, base_layout, hover


def _step_series(steps: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    if column not in steps or steps[column].isna().all():
        return None
    x = steps["step"].to_numpy()
    y = steps[column].to_numpy(dtype=float)
    keep = minmax_indices(y)
    return x[keep], y[keep]


def training_curves(steps: pd.DataFrame | None, epochs: pd.DataFrame | None, test: dict | None) -> go.Figure | None:
    """Loss (per step, and per epoch on train and validation), accuracy per epoch, lr per step.

    Args:
        steps: step records of ``metrics.jsonl`` (``step, loss, lr``); long runs are min-max
            decimated, so spikes stay visible.
        epochs: epoch records (``step, epoch, train_loss, val_loss, train_accuracy, ...``),
            drawn at the step that ended the epoch.
        test: the ``test`` record (its accuracy is drawn as one point at its step).

    Returns:
        a figure with three panels, or None when there is nothing to draw.
    """
    has_steps = steps is not None and not steps.empty
    has_epochs = epochs is not None and not epochs.empty
    if not has_steps and not has_epochs:
        return None
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "accuracy", "learning rate"), horizontal_spacing=0.07)
    if has_steps:
        series = _step_series(steps, "loss")
        if series is not None:
            fig.add_trace(go.Scatter(x=series[0], y=series[1], mode="lines", name="loss per step",
                                       line={"color": GREY, "width": 1}, opacity=0.6,
                                       **hover("step %{x}<br>loss %{y:.4g}")), row=1, col=1)
        series = _step_series(steps, "lr")
        if series is not None:
            fig.add_trace(go.Scatter(x=series[0], y=series[1], mode="lines", name="lr", line={"color": GREEN},
                                     showlegend=False, **hover("step %{x}<br>lr %{y:.3g}")), row=1, col=3)
    if has_epochs:
        x = epochs["step"].to_numpy()
        ep = epochs["epoch"].to_numpy() if "epoch" in epochs else np.arange(len(epochs))
        for split, color in (("train", BLUE), ("val", ORANGE)):
            label = "validation" if split == "val" else split
            for col, metric in ((1, "loss"), (2, "accuracy")):
                name = f"{split}_{metric}"
                if name not in epochs or epochs[name].isna().all():
                    continue
                fig.add_trace(go.Scatter(
                    x=x, y=epochs[name].to_numpy(dtype=float), customdata=ep, mode="lines+markers",
                    name=f"{label} (epoch)", legendgroup=split, showlegend=col == 1 or f"{split}_loss" not in epochs,
                    line={"color": color, "width": 2}, marker={"size": 5},
                    **hover(f"epoch %{{customdata}} (step %{{x}})<br>{label} {metric} %{{y:.4g}}"),
                ), row=1, col=col)
    if test and test.get("test_accuracy") is not None:
        fig.add_trace(go.Scatter(x=[test.get("step", 0)], y=[test["test_accuracy"]], mode="markers", name="test",
                                 marker={"color": "#111827", "size": 11, "symbol": "star"},
                                 **hover("test accuracy %{y:.4g}")), row=1, col=2)
    base_layout(fig, height=350, subplots=True)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_yaxes(exponentformat="e", row=1, col=3)
    if has_steps and "lr" in steps and steps["lr"].notna().any():
        # A constant lr would get an autorange of +-1 around it; start the axis at zero instead.
        fig.update_yaxes(range=[0, 1.15 * float(steps["lr"].max())], row=1, col=3)
    return fig
