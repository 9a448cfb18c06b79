"""Gradient trajectories: global norm, clip threshold, clipped and skipped steps, the
accumulation factor K, with the Guard's spike events (skip, rollback) marked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainground.report.downsample import minmax_indices
from trainground.report.style import BLUE, ORANGE, PURPLE, RED, base_layout, hover

# Guard actions that mark a spike (the others, e.g. "accumulation", change K and show there).
SPIKE_ACTIONS = ("skip", "rollback")
MAX_MARKERS = 2000  # more spike markers than this say "every step", which the count already says


@dataclass(frozen=True)
class SpikeEvents:
    """Steps where the Guard reacted to a spike.

    Attributes:
        skipped: steps whose update was not applied (``skipped`` in metrics.jsonl, or a
            ``skip`` action).
        rollbacks: steps where the Guard restored a snapshot.
    """

    skipped: np.ndarray
    rollbacks: np.ndarray


def spike_events(steps: pd.DataFrame | None, actions: list[dict[str, Any]] | None) -> SpikeEvents:
    """Union of the skipped steps in ``metrics.jsonl`` and the spike actions in ``actions.jsonl``."""
    skipped: set[int] = set()
    if steps is not None and "skipped" in steps:
        skipped.update(steps.loc[steps["skipped"].fillna(0) > 0, "step"].astype(int).tolist())
    rollbacks: set[int] = set()
    for record in actions or []:
        if record.get("action") == "skip" and record.get("step") is not None:
            skipped.add(int(record["step"]))
        elif record.get("action") == "rollback" and record.get("step") is not None:
            rollbacks.add(int(record["step"]))
    return SpikeEvents(np.array(sorted(skipped), dtype=np.int64), np.array(sorted(rollbacks), dtype=np.int64))


def clipped_share(steps: pd.DataFrame) -> pd.Series:
    """Share of steps per epoch whose gradient norm exceeded the clip threshold (was clipped)."""
    norm, threshold = steps["grad_norm"].to_numpy(float), steps["clip_threshold"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        clipped = np.isfinite(threshold) & (norm > threshold)
    return pd.Series(clipped, index=steps.index).groupby(steps["epoch"]).mean()


def gradient_trajectories(steps: pd.DataFrame | None, actions: list[dict[str, Any]] | None) -> go.Figure | None:
    """Three stacked panels sharing the step axis: norm and threshold (log scale) with spike
    markers; the share of clipped steps per epoch; the accumulation factor K.

    Args:
        steps: step records with ``grad_norm`` (written when the run had a Guard).
        actions: the run's ``actions.jsonl`` records, or None.

    Returns:
        the figure, or None when the run logged no gradient norms.
    """
    if steps is None or "grad_norm" not in steps or steps["grad_norm"].isna().all():
        return None
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.6, 0.2, 0.2], vertical_spacing=0.09,
                        subplot_titles=("global gradient norm", "clipped steps per epoch", "accumulation K"))
    x = steps["step"].to_numpy()
    norm = steps["grad_norm"].to_numpy(float)
    keep = minmax_indices(norm)
    fig.add_trace(go.Scatter(x=x[keep], y=norm[keep], mode="lines", name="gradient norm", line={"color": BLUE, "width": 1},
                             **hover("step %{x}<br>norm %{y:.4g}")), row=1, col=1)
    if "clip_threshold" in steps and steps["clip_threshold"].notna().any():
        threshold = steps["clip_threshold"].to_numpy(float)
        keep_t = minmax_indices(threshold)
        fig.add_trace(go.Scatter(x=x[keep_t], y=threshold[keep_t], mode="lines", name="clip threshold",
                                 line={"color": ORANGE, "width": 1.5, "dash": "dot"},
                                 **hover("step %{x}<br>threshold %{y:.4g}")), row=1, col=1)
        share = clipped_share(steps)
        ends = steps.groupby("epoch")["step"].max().reindex(share.index)
        fig.add_trace(go.Bar(x=ends.to_numpy(), y=share.to_numpy(), name="clipped share", marker={"color": ORANGE},
                             customdata=share.index.to_numpy(), showlegend=False,
                             **hover("epoch %{customdata}<br>%{y:.0%} of steps clipped")), row=2, col=1)
    events = spike_events(steps, actions)
    finite = norm[np.isfinite(norm)]
    ceiling = float(finite.max()) if finite.size else 1.0
    by_step = pd.Series(norm, index=x)
    by_step = by_step[~by_step.index.duplicated(keep="last")]
    for marks, name, symbol, color in ((events.skipped, "skipped step (spike)", "x", RED),
                                       (events.rollbacks, "rollback", "triangle-down", PURPLE)):
        if marks.size == 0:
            continue
        shown = marks[:MAX_MARKERS]
        # A non-finite norm has no place on a log axis: draw it at the top of the panel.
        y = by_step.reindex(shown).to_numpy(float)
        y = np.where(np.isfinite(y) & (y > 0), y, ceiling)
        label = name if marks.size <= MAX_MARKERS else f"{name} (first {MAX_MARKERS} of {marks.size})"
        fig.add_trace(go.Scatter(x=shown, y=y, mode="markers", name=label,
                                 marker={"symbol": symbol, "size": 9, "color": color, "line": {"width": 1.5, "color": color}},
                                 **hover(f"{name} at step %{{x}}")), row=1, col=1)
    if "accum_k" in steps and steps["accum_k"].notna().any():
        k = steps["accum_k"].to_numpy(float)
        keep_k = minmax_indices(k)
        fig.add_trace(go.Scatter(x=x[keep_k], y=k[keep_k], mode="lines", name="K", line={"color": PURPLE, "shape": "hv"},
                                 showlegend=False, **hover("step %{x}<br>K = %{y}")), row=3, col=1)
    base_layout(fig, height=560, subplots=True)
    fig.update_yaxes(type="log", exponentformat="power", dtick="D2", row=1, col=1)  # minor labels at 2 and 5 only
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05], row=2, col=1)
    if "accum_k" in steps and steps["accum_k"].notna().any():
        top_k = max(1.0, float(steps["accum_k"].max()))
        fig.update_yaxes(range=[0, top_k + 0.5], dtick=max(1, int(top_k) // 4), row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig
