"""One look for every figure, and figures to compact JSON for the page.

Plotly's default template is about 8 kB of JSON per figure; the page sets the few layout
values it needs itself (template ``"none"``), so ten figures do not carry 80 kB of styling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

# Colour-blind-safe hues (Okabe-Ito), dark enough on white.
BLUE, ORANGE, GREEN, RED, PURPLE, GREY = "#0072B2", "#D55E00", "#009E73", "#C0392B", "#7B5EA7", "#8A8F98"
INK, GRID = "#1F2328", "#E6E8EB"

# Sequential scale for magnitudes (light = small), diverging is never needed here.
SEQUENTIAL = [[0.0, "#F7FBFF"], [0.25, "#C6DBEF"], [0.5, "#6BAED6"], [0.75, "#2171B5"], [1.0, "#08306B"]]
DEAD = [[0.0, "#FFFFFF"], [0.2, "#FDD0A2"], [0.5, "#FD8D3C"], [1.0, "#7F2704"]]


def base_layout(fig: go.Figure, *, height: int = 320, title: str | None = None, legend: bool = True,
                subplots: bool = False) -> go.Figure:
    """Apply the report's look: white background, light grid, legend on top, small margins.

    ``subplots``: the figure has subplot titles, so the legend goes higher to clear them.
    """
    top = 28 + (20 if title else 0) + (34 if subplots else 0)
    fig.update_layout(
        template="none", height=height, margin={"l": 60, "r": 20, "t": top, "b": 44},
        font={"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12, "color": INK},
        paper_bgcolor="white", plot_bgcolor="white", hovermode="closest", showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 11},
                "yref": "container" if subplots else "paper"},
        title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
    )
    if subplots:
        fig.update_annotations(font={"size": 13, "color": INK})
        fig.update_layout(legend={"yanchor": "top", "y": 0.995})
    fig.update_xaxes(showgrid=True, gridcolor=GRID, zeroline=False, linecolor="#B8BEC6", ticks="outside",
                     tickcolor="#B8BEC6", automargin=True)
    fig.update_yaxes(showgrid=True, gridcolor=GRID, zeroline=False, linecolor="#B8BEC6", ticks="outside",
                     tickcolor="#B8BEC6", automargin=True)
    return fig


def figures_json(figures: Mapping[str, go.Figure]) -> str:
    """All figures as one JSON object ``{id: {"data", "layout"}}``, safe inside ``<script>``.

    Numeric arrays are base64 typed arrays (plotly's ``bdata``), a fraction of the size of
    decimal text. ``<``, ``>`` and ``&`` are escaped so no string in a figure can close
    the script element.
    """
    parts = [f"{json.dumps(key)}:{pio.to_json(fig, validate=False, remove_uids=True)}" for key, fig in figures.items()]
    return script_safe("{" + ",".join(parts) + "}")


def script_safe(text: str) -> str:
    """JSON text that can sit inside an HTML ``<script>`` element unchanged in meaning."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def hover(template: str) -> dict[str, Any]:
    """A hover template without the trace-name box (the legend already names it)."""
    return {"hovertemplate": template + "<extra></extra>"}
