"""A multi-target run's tasks side by side: per-task loss and metric curves, per-task gradient norms
(and per-modality ones, when the run clipped parameter groups such as ``{"image", "text"}``), and
the cosine between the tasks' gradients on the shared parameters."""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainground.report.curves import _step_series
from trainground.report.style import base_layout, hover

# One colour per task (the plotly qualitative palette's first ones).
_COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2")
_METRIC = re.compile(r"^val_(?P<metric>[a-z_]+)/(?P<task>[^/]+)$")
_GROUP = "group_grad_norm/"  # per-modality (parameter group) norms, logged by gradients.TaskGradients


def run_groups(steps: pd.DataFrame | None) -> list[str]:
    """Parameter groups (modalities) whose gradient norms the run logged, in order."""
    if steps is None:
        return []
    return [c.removeprefix(_GROUP) for c in steps.columns if c.startswith(_GROUP)]


def run_tasks(epochs: pd.DataFrame | None) -> list[str]:
    """Task names of a multi-target run (from its ``train_loss/<task>`` epoch columns), in order."""
    if epochs is None:
        return []
    return [c.split("/", 1)[1] for c in epochs.columns if c.startswith("train_loss/")]


def task_curves(steps: pd.DataFrame | None, epochs: pd.DataFrame | None) -> go.Figure | None:
    """Four panels: each task's loss per epoch (train solid, validation dashed), each task's
    validation metric, each task's gradient norm per step (and each modality's, dotted, when
    the run clipped parameter groups) and the pairwise gradient cosines (the last two only
    when the run logged per-task gradients: ``tasks.per_task``)."""
    tasks = run_tasks(epochs)
    if not tasks or epochs is None:
        return None
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.06, subplot_titles=(
        "loss per task", "validation metric per task", "gradient norm per task (shared parameters)"
        + (" and per modality (dotted)" if run_groups(steps) else ""),
        "cosine between task gradients"))
    x = epochs["step"].to_numpy()
    colour = {t: _COLOURS[i % len(_COLOURS)] for i, t in enumerate(tasks)}
    for task in tasks:
        for split, dash in (("train", "solid"), ("val", "dash")):
            name = f"{split}_loss/{task}"
            if name in epochs and epochs[name].notna().any():
                fig.add_trace(go.Scatter(x=x, y=epochs[name].to_numpy(dtype=float), mode="lines+markers",
                                         name=f"{task} ({'validation' if split == 'val' else split})",
                                         legendgroup=task, line={"color": colour[task], "dash": dash},
                                         **hover(f"step %{{x}}<br>{task} {split} loss %{{y:.4g}}")), row=1, col=1)
    for column in epochs.columns:
        match = _METRIC.match(column)
        if match is None or match["metric"] == "loss" or match["task"] not in colour:
            continue
        task, metric = match["task"], match["metric"]
        fig.add_trace(go.Scatter(x=x, y=epochs[column].to_numpy(dtype=float), mode="lines+markers",
                                 name=f"{task} {metric}", legendgroup=task, showlegend=False,
                                 line={"color": colour[task]},
                                 **hover(f"step %{{x}}<br>{task} validation {metric} %{{y:.4g}}")), row=1, col=2)
    if steps is not None and not steps.empty:
        for task in tasks:
            series = _step_series(steps, f"task_grad_norm/{task}")
            if series is not None:
                fig.add_trace(go.Scatter(x=series[0], y=series[1], mode="lines", name=f"{task} grad norm",
                                         legendgroup=task, showlegend=False,
                                         line={"color": colour[task], "width": 1},
                                         **hover(f"step %{{x}}<br>{task} gradient norm %{{y:.4g}}")), row=1, col=3)
        for k, group in enumerate(run_groups(steps)):
            series = _step_series(steps, _GROUP + group)
            if series is not None:
                fig.add_trace(go.Scatter(x=series[0], y=series[1], mode="lines", name=f"{group} (modality) grad norm",
                                         line={"color": _COLOURS[(k + len(tasks)) % len(_COLOURS)], "width": 1,
                                               "dash": "dot"},
                                         **hover(f"step %{{x}}<br>{group} gradient norm %{{y:.4g}}")), row=1, col=3)
        for k, column in enumerate(c for c in steps.columns if c.startswith("task_grad_cos/")):
            series = _step_series(steps, column)
            if series is not None:
                pair = column.split("/", 1)[1].replace("/", " vs ")
                fig.add_trace(go.Scatter(x=series[0], y=series[1], mode="lines", name=f"cos {pair}",
                                         line={"color": _COLOURS[(k + len(tasks)) % len(_COLOURS)], "width": 1},
                                         **hover(f"step %{{x}}<br>cos({pair}) %{{y:.3f}}")), row=1, col=4)
        fig.add_hline(y=0, line={"color": "#9ca3af", "width": 1, "dash": "dot"}, row=1, col=4)
    base_layout(fig, height=350, subplots=True)
    fig.update_xaxes(title_text="step")
    return fig


def task_facts(steps: pd.DataFrame | None, epochs: pd.DataFrame | None) -> list[str]:
    """One line per task (last epoch's validation figures) and the mean cosine of each pair."""
    tasks = run_tasks(epochs)
    if not tasks or epochs is None:
        return []
    last = epochs.iloc[-1]
    facts = []
    for task in tasks:
        parts = [f"{c.split('/')[0].removeprefix('val_')} {last[c]:.3g}" for c in epochs.columns
                 if c.startswith("val_") and c.endswith(f"/{task}") and pd.notna(last[c])]
        weight = last.get(f"task_weight/{task}")
        if weight is not None and pd.notna(weight):
            parts.append(f"loss weight {weight:.3g}")
        facts.append(f"{task}: " + ", ".join(parts))
    for group in run_groups(steps):
        assert steps is not None
        values = steps[_GROUP + group].dropna()
        if len(values):
            facts.append(f"{group} (modality) gradient norm: median {values.median():.3g}, "
                         f"90th percentile {values.quantile(0.9):.3g}")
    if steps is not None:
        for column in (c for c in steps.columns if c.startswith("task_grad_cos/")):
            values = steps[column].dropna()
            if len(values):
                pair = column.split("/", 1)[1].replace("/", " vs ")
                facts.append(f"gradient cosine {pair}: mean {values.mean():.2f}, "
                             f"{(values < 0).mean():.0%} of steps in conflict (< 0)")
    return facts


def task_sample_tables(table: pd.DataFrame | None, tasks: list[str]) -> dict[str, pd.DataFrame]:
    """A multi-target ``sample_issues.csv`` split into one single-task table per task (its
    ``_<task>`` columns unsuffixed, plus the task-free outlier / near-duplicate columns); empty
    for a single-target table."""
    if table is None or not tasks or "given_label" in table.columns:
        return {}
    out = {}
    for task in tasks:
        own = [c for c in table.columns if c.endswith(f"_{task}")]
        if f"given_label_{task}" not in own:
            continue
        free = [c for c in table.columns if c != "index" and not any(c.endswith(f"_{t}") for t in tasks)]
        part = table[["index", *own, *free]].rename(columns={c: c.removesuffix(f"_{task}") for c in own})
        out[task] = part
    return out
