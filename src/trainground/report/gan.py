"""The page of a two-player (GAN) run: both players' curves, the generative metrics and the sample grids per epoch."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from trainground.diagnosis.findings import read_findings
from trainground.engine.atomic import atomic_write_text
from trainground.engine.generative import sample_grid_paths
from trainground.engine.metrics import read_metrics
from trainground.errors import RunDirError
from trainground.report.render import evidence_items, plotly_js
from trainground.report.style import base_layout, figures_json

PLAYERS = ("discriminator", "generator")
# Step losses are shown as means over blocks of this many micro-batches (mini-batch noise hides the trend).
BLOCK = 10
_METRICS = (("gen_f1", "F1"), ("gen_precision", "precision"), ("gen_recall", "recall"),
            ("gen_mode_coverage", "mode coverage"), ("gen_ssim_intra", "SSIM between samples"))

_PAGE = jinja2.Template("""<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#1f2933;max-width:1100px}
h2{margin-top:28px}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0}
figcaption{font-size:12px;color:#52606d}.finding{border-left:4px solid #c2410c;padding:4px 10px;margin:8px 0}
.finding.warning{border-color:#d97706}.finding.info{border-color:#64748b}td,th{padding:2px 10px;text-align:right}
</style><script>{{ plotly_js }}</script></head><body>
<h1>{{ title }}</h1>
<h2>Findings</h2>
{% for f in findings %}<div class="finding {{ f.severity.value }}"><b>{{ f.check }}</b> ({{ f.severity.value }}): {{ f.message }}
<br><small>{{ f.suggestion }}</small><br><small>{% for k, v in evidence_items(f.evidence) %}{{ k }}={{ v }} {% endfor %}</small></div>
{% else %}<p>The GAN checks found nothing (mode collapse, discriminator overpowering, oscillation).</p>{% endfor %}
{% if final %}<h2>Final generative metrics</h2><table><tr><th></th>{% for k in final %}<th>{{ k }}</th>{% endfor %}</tr>
<tr><th>generator</th>{% for v in final.values() %}<td>{{ '%.3f' % v }}</td>{% endfor %}</tr>
{% if reference %}<tr><th>real digits (held out)</th>{% for k in final %}<td>{{ '%.3f' % reference.get(k, nan) }}</td>{% endfor %}</tr>{% endif %}
</table>{% endif %}
{% for id in plot_ids %}<div id="{{ id }}"></div>{% endfor %}
<h2>Sample grids per epoch (fixed noise)</h2><div class="grid">
{% for name, uri in grids %}<figure><img src="{{ uri }}" alt="{{ name }}"><figcaption>{{ name }}</figcaption></figure>{% endfor %}
</div>
<script>const F={{ figures_json }};for(const id in F){Plotly.newPlot(id,F[id].data,F[id].layout,{displaylogo:false});}</script>
</body></html>""", autoescape=True)


def _player_curves(run: Path) -> go.Figure | None:
    fig = go.Figure()
    for name in PLAYERS:
        path = run / f"metrics-{name}.jsonl"
        if not path.is_file():
            continue
        steps = pd.DataFrame([r for r in read_metrics(path) if r.get("kind") == "step"])
        if steps.empty:
            continue
        loss = pd.to_numeric(steps["loss"], errors="coerce").to_numpy(dtype=float)
        n = len(loss) // BLOCK
        if n == 0:
            continue
        means = np.nanmean(loss[: n * BLOCK].reshape(n, BLOCK), axis=1)
        # x: the share of the run, so the players line up whatever their `every`
        fig.add_trace(go.Scatter(x=np.arange(1, n + 1) / n, y=means, name=f"{name} loss (mean of {BLOCK} steps)",
                                 mode="lines"))
    if not fig.data:
        return None
    fig.update_xaxes(title="share of the run")
    return base_layout(fig, title="Both players' losses")


def _metric_curves(epochs: pd.DataFrame) -> go.Figure | None:
    shown = [(c, label) for c, label in _METRICS if c in epochs]
    if not shown:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("generative metrics", "Frechet distance (lower is better)"))
    for column, label in shown:
        fig.add_trace(go.Scatter(x=epochs["epoch"] + 1, y=epochs[column], name=label, mode="lines+markers"), 1, 1)
    if "real_ssim_intra" in epochs:
        fig.add_trace(go.Scatter(x=epochs["epoch"] + 1, y=epochs["real_ssim_intra"], name="SSIM between real digits",
                                 mode="lines", line={"dash": "dot"}), 1, 1)
    if "gen_frechet" in epochs:
        fig.add_trace(go.Scatter(x=epochs["epoch"] + 1, y=epochs["gen_frechet"], name="Frechet", mode="lines+markers"),
                      1, 2)
    fig.update_xaxes(title="epoch")
    return base_layout(fig, height=360, subplots=True)


def render_gan_report(run_dir: str | Path) -> str:
    """The page of the two-player run in ``run_dir`` as one HTML string (everything inlined)."""
    run = Path(run_dir)
    if not (run / "metrics.jsonl").is_file():
        raise RunDirError(f"{run}: no metrics.jsonl; not a finished two-player run")
    epochs = pd.DataFrame([r for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "epoch"])
    figures = {}
    players = _player_curves(run)
    if players is not None:
        figures["players"] = players
    if not epochs.empty:
        metrics = _metric_curves(epochs)
        if metrics is not None:
            figures["metrics"] = metrics
    summary = {}
    if (run / "generative_metrics.json").is_file():
        summary = json.loads((run / "generative_metrics.json").read_text(encoding="utf-8"))
    findings = read_findings(run / "findings.json") if (run / "findings.json").is_file() else []
    grids = [(p.stem, "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii"))
             for p in sample_grid_paths(run)]
    final = {k: v for k, v in (summary.get("final") or {}).items() if isinstance(v, (int, float))}
    return _PAGE.render(title=f"GAN run {html.escape(run.name)}", findings=findings, final=final,
                        reference=summary.get("real_reference") or {}, nan=float("nan"), grids=grids,
                        plot_ids=list(figures), figures_json=Markup(figures_json(figures)),
                        plotly_js=Markup(plotly_js()), evidence_items=evidence_items)


def save_gan_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the page to ``out`` (default ``run_dir/report.html``) atomically; returns the path."""
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(target, render_gan_report(run_dir))
    return target
