"""Given-vs-suggested label matrix of the samples flagged as label issues: the estimated
noise pattern (which class gets mislabelled as which)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainground.report.style import SEQUENTIAL, base_layout, hover

MAX_CLASSES = 30  # beyond this the matrix is unreadable; the classes most involved are kept


def label_confusion(table: pd.DataFrame, classes: Sequence[Any] | None = None) -> tuple[list[str], np.ndarray] | None:
    """Counts of (given, suggested) among flagged label issues.

    Args:
        table: ``sample_issues.csv`` (``given_label``, ``suggested_label``, ``is_label_issue``).
        classes: class values in model order (their order is kept), or None for sorted order.

    Returns:
        ``(class names, counts [given, suggested])``, or None without label-issue columns or
        flagged rows. With more than ``MAX_CLASSES`` classes only the most involved are kept.
    """
    needed = {"given_label", "suggested_label", "is_label_issue"}
    if not needed <= set(table.columns):
        return None
    flagged = table[table["is_label_issue"].astype(bool)]
    if flagged.empty:
        return None
    given, suggested = flagged["given_label"].astype(str), flagged["suggested_label"].astype(str)
    seen = set(given) | set(suggested)
    names = [str(c) for c in classes if str(c) in seen] if classes is not None else []
    names += sorted(seen - set(names), key=_natural)
    if len(names) > MAX_CLASSES:
        involvement = pd.concat([given, suggested]).value_counts()
        top = set(involvement.index[:MAX_CLASSES])
        names = [n for n in names if n in top]
    position = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    for g, s in zip(given, suggested, strict=True):
        if g in position and s in position:
            counts[position[g], position[s]] += 1
    return names, counts


def _natural(value: str) -> tuple[int, float | str]:
    # "2" before "10": numeric labels in numeric order, then the rest alphabetically
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def confusion_figure(table: pd.DataFrame | None, classes: Sequence[Any] | None = None) -> go.Figure | None:
    """Heatmap of :func:`label_confusion` with the counts written in the cells."""
    if table is None:
        return None
    result = label_confusion(table, classes)
    if result is None:
        return None
    names, counts = result
    z = np.where(counts > 0, counts, np.nan)  # empty cells stay white
    fig = go.Figure(go.Heatmap(
        x=names, y=names, z=z, text=np.where(counts > 0, counts.astype(str), ""), texttemplate="%{text}",
        colorscale=SEQUENTIAL, colorbar={"title": {"text": "samples"}, "thickness": 12}, xgap=1, ygap=1,
        hoverongaps=False, **hover("given %{y} -> suggested %{x}<br>%{z} samples"),
    ))
    side = min(620, 140 + 34 * len(names))
    base_layout(fig, height=side, legend=False)
    fig.update_xaxes(title_text="suggested label", type="category", showgrid=False, side="bottom")
    fig.update_yaxes(title_text="given label", type="category", autorange="reversed", showgrid=False)
    fig.update_layout(width=side + 120)
    return fig
