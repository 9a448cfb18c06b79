"""The learning-rate range test's curve (``lr_find.json`` of ``trainground lr-find``)."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from trainground.report.style import BLUE, GREY, ORANGE, base_layout, hover


def lr_find_figure(record: dict[str, Any] | None) -> go.Figure | None:
    """Loss (raw and smoothed) against the lr on a log axis, the suggestion marked.

    Returns None when there is no curve to draw.
    """
    if not record or not record.get("lrs"):
        return None
    lrs = record["lrs"]
    raw = [math.nan if v is None else v for v in record.get("losses", [])]
    smooth = [math.nan if v is None else v for v in record.get("smoothed", [])]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lrs, y=raw, mode="lines", name="batch loss", line={"color": GREY, "width": 1},
                             opacity=0.6, **hover("lr %{x:.3g}<br>loss %{y:.4g}")))
    fig.add_trace(go.Scatter(x=lrs, y=smooth, mode="lines", name="smoothed loss", line={"color": BLUE},
                             **hover("lr %{x:.3g}<br>smoothed %{y:.4g}")))
    finite = [v for v in smooth if math.isfinite(v)]
    for key, label, dash in (("suggestion", "suggested lr", "solid"), ("min_lr", "lr at the minimum", "dot"),
                             ("steepest_lr", "steepest fall", "dash")):
        value = record.get(key)
        if value is None or not finite:
            continue
        fig.add_trace(go.Scatter(x=[value, value], y=[min(finite), max(finite)], mode="lines", name=label,
                                 line={"color": ORANGE, "dash": dash}, **hover(f"{label} %{{x:.3g}}")))
    base_layout(fig, height=340)
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(title_text="training loss")
    return fig
