"""The tune page (``OUT/report.html``): trials over time, parameter importances, why trials
were pruned, and the best trial's curves. Offline, like the run report: plotly.js inlined.

Optuna's own figures are used where they fit (optimisation history, importances); the
pruned-reason bars and the best trial's curves are the run report's.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from trainground.report.curves import training_curves
from trainground.report.read import read_run
from trainground.report.render import plotly_js
from trainground.report.style import ORANGE, base_layout, figures_json

logger = logging.getLogger("trainground.tune")


def _optuna_figures(study: Any) -> dict[str, go.Figure]:
    from optuna import visualization

    figures = {}
    for key, make in (("history", visualization.plot_optimization_history),
                      ("importances", visualization.plot_param_importances),
                      ("timeline", visualization.plot_timeline)):
        try:
            figures[key] = make(study)
        except Exception as err:  # noqa: BLE001 - e.g. importances need two completed trials
            logger.debug("tune page: %s omitted (%s)", key, err)
    return figures


def _pruned_figure(reasons: dict[str, int]) -> go.Figure | None:
    if not reasons:
        return None
    fig = go.Figure(go.Bar(x=list(reasons), y=list(reasons.values()), marker_color=ORANGE))
    base_layout(fig, height=260, legend=False)
    fig.update_yaxes(title_text="pruned trials")
    return fig


def render_tune_page(study: Any, summary: dict[str, Any]) -> str:
    """The page as one HTML string."""
    figures = _optuna_figures(study)
    pruned = _pruned_figure(summary.get("pruned_by_reason") or {})
    if pruned is not None:
        figures["pruned"] = pruned
    best = summary.get("best")
    if best and best.get("run_dir") and Path(best["run_dir"]).is_dir():
        run = read_run(best["run_dir"])
        curves = training_curves(run.steps, run.epochs, run.test)
        if curves is not None:
            figures["best_curves"] = curves
    titles = {"history": "Trials over time", "timeline": "Timeline (complete, pruned, failed)",
              "importances": "Parameter importances (fANOVA)", "pruned": "Pruned trials by reason",
              "best_curves": "Best trial's training curves"}
    facts = [f"study <code>{html.escape(str(summary['study']))}</code>", f"{summary['trials']} trials",
             ", ".join(f"{n} {html.escape(k)}" for k, n in summary["states"].items()),
             f"compute: {summary['compute']['epochs']} epochs, {summary['compute']['seconds']} s"]
    if best:
        params = ", ".join(f"{html.escape(k)}={html.escape(repr(v))}" for k, v in best["params"].items())
        facts.append(f"best: trial {best['number']}, value {best['value']:.4f} ({params})")
    sections = "".join(
        f'<section class="card"><h2>{titles[k]}</h2><div class="plot" data-fig="{k}" id="plot-{k}"></div></section>'
        for k in titles if k in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trainground · tune {html.escape(str(summary['study']))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#1F2328}} .card{{border:1px solid #E6E8EB;
border-radius:8px;padding:12px 16px;margin:12px 0}} .plot{{min-height:300px}}</style></head>
<body><h1>Tune: {html.escape(str(summary['study']))}</h1>
<section class="card" id="summary"><ul>{''.join(f'<li>{f}</li>' for f in facts)}</ul>
<p>Diagnosis-aware pruning ends a trial at the first epoch whose training diagnosis finds an error-severity
pathology (divergence, non-finite loss, dead network, collapse); <code>summary.json</code> counts them per reason.</p>
</section>{sections}
<script type="application/json" id="tg-figures">{figures_json(figures)}</script>
<script>{plotly_js()}</script>
<script>(function(){{var f=JSON.parse(document.getElementById("tg-figures").textContent);
document.querySelectorAll("div.plot").forEach(function(d){{var g=f[d.dataset.fig];
Plotly.newPlot(d,g.data,g.layout,{{displaylogo:false,responsive:true}});}});}})();</script>
</body></html>"""
