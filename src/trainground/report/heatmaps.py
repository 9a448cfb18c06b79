"""Per-layer heatmaps over time from ``layers.parquet`` (long format ``step, epoch, layer,
stat, value``): gradient norm (``grad_norm``, gradient monitor) and dead-unit fraction
(``dead_fraction``, activation monitor, one value per window of steps)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainground.report.downsample import bucket_columns
from trainground.report.style import DEAD, SEQUENTIAL, base_layout, hover

MAX_COLUMNS = 300  # time columns per heatmap; more are averaged in buckets of consecutive steps


def stat_grid(layers: pd.DataFrame, stat: str, *, max_columns: int = MAX_COLUMNS) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """One statistic as a ``layer x time`` grid.

    Args:
        layers: the long table.
        stat: statistic name.
        max_columns: at most this many time columns; consecutive steps are averaged
            (the mean, so one spike in a bucket still raises its cell).

    Returns:
        ``(layer names in first-seen order, steps [T], values [L, T])`` or None when the
        statistic is absent.
    """
    rows = layers[layers["stat"] == stat]
    if rows.empty:
        return None
    order = list(dict.fromkeys(rows["layer"].astype(str)))
    grid = rows.pivot_table(index="step", columns=rows["layer"].astype(str), values="value", aggfunc="mean",
                            observed=True)
    grid = grid.reindex(columns=order).sort_index()
    steps = grid.index.to_numpy()
    values = grid.to_numpy(float).T
    buckets = bucket_columns(len(steps), max_columns)
    if buckets[-1] + 1 < len(steps):
        frame = pd.DataFrame(values.T).groupby(buckets)
        values = frame.mean().to_numpy().T
        steps = pd.Series(steps).groupby(buckets).max().to_numpy()
    return order, steps, values


def layer_heatmap(layers: pd.DataFrame | None, stat: str) -> go.Figure | None:
    """Heatmap of ``grad_norm`` (log10 colour) or a fraction in [0, 1] (``dead_fraction``,
    ``inactive_fraction``), layers top to bottom in forward order; None when absent."""
    if layers is None or layers.empty:
        return None
    grid = stat_grid(layers, stat)
    if grid is None:
        return None
    names, steps, values = grid
    if stat == "grad_norm":
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(values > 0, np.log10(values), np.nan)
        colour = {"colorscale": SEQUENTIAL, "colorbar": {"title": {"text": "log10 norm"}, "thickness": 12}}
        text = np.vectorize(lambda v: f"{v:.3g}")(values) if values.size else values
        tip = "step %{x}<br>%{y}<br>norm %{text}"
    else:
        z = values
        colour = {"colorscale": DEAD, "zmin": 0.0, "zmax": 1.0,
                  "colorbar": {"title": {"text": "fraction"}, "thickness": 12, "tickformat": ".0%"}}
        # A few windows: write the share in each cell, so an all-zero map reads "0%", not "empty".
        text = np.vectorize(lambda v: "" if math.isnan(v) else f"{v:.0%}")(values) if len(steps) <= 20 else None
        tip = "step %{x}<br>%{y}<br>%{z:.1%}"
    fig = go.Figure(go.Heatmap(x=steps, y=names, z=z, text=text,
                               texttemplate="%{text}" if text is not None and stat != "grad_norm" else None, xgap=1 if len(steps) <= 60 else 0, ygap=1,
                               hoverongaps=False, **colour, **hover(tip)))
    base_layout(fig, height=max(180, 60 + 34 * len(names)), legend=False)
    fig.update_yaxes(autorange="reversed", showgrid=False, type="category")
    fig.update_xaxes(title_text="step", showgrid=False)
    if len(steps) < 20:
        # A handful of windows: show each as its own labelled column, not a stretched block.
        fig.update_xaxes(type="category")
    return fig


def dead_unit_stat(layers: pd.DataFrame | None) -> str | None:
    """``dead_fraction`` (never active over a window) when recorded, else the per-batch
    ``inactive_fraction``; None when the run recorded neither."""
    if layers is None or layers.empty:
        return None
    present = set(layers["stat"].astype(str).unique())
    return next((s for s in ("dead_fraction", "inactive_fraction") if s in present), None)
