"""``report.html``: one self-contained page (plotly.js inlined once, no external URL) rendered
from a run directory or a repair folder with the jinja2 template in ``templates/``."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import plotly.graph_objects as go
from markupsafe import Markup

from trainground.diagnosis.findings import Finding
from trainground.engine.atomic import atomic_write_text
from trainground.report.confusion import confusion_figure
from trainground.report.curves import training_curves
from trainground.report.tasks import task_curves, task_facts
from trainground.report.explanations import ExplanationsView, explanations_view
from trainground.report.heatmaps import dead_unit_stat, layer_heatmap
from trainground.report.lr_find_plot import lr_find_figure
from trainground.report.model import RepairReport, Report, RunReport
from trainground.report.read import read_report
from trainground.report.repair_section import RepairTables, repair_tables, rounds_figure
from trainground.report.sample_table import TOP_ROWS, SampleTable, build_sample_table
from trainground.report.style import figures_json, script_safe
from trainground.report.summary import Summary, fmt, summarize
from trainground.report.trajectories import (
    clipped_share,
    gradient_trajectories,
    spike_events,
)

TEMPLATES = Path(__file__).parent / "templates"
MAX_ACTIONS = 200  # Guard actions listed in the page; actions.jsonl has them all
_DEAD_TITLES = {"dead_fraction": "dead-unit fraction (never active over a window of steps)",
                "inactive_fraction": "inactive-unit fraction per sampled batch"}


@dataclass
class RunView:
    """What the template shows for one run (a plain run, or round 0 / the best round of a repair).

    Attributes:
        prefix: prefix of the element ids of this run's sections (unique in the page).
        title: heading of the run's sections.
        path: the run directory.
        plots: figure id per section (``curves``, ``gradients``, ``layer_grad``,
            ``layer_dead``, ``confusion``), only those drawn.
        dead_title: what the dead-unit heatmap shows.
        gradient_facts: one-line facts under the gradient plot.
        actions: the Guard's actions (capped at ``MAX_ACTIONS``) and how many there are.
        findings: every finding, most severe first (None when findings.json is missing).
        samples: the sample table (None without sample_issues.csv).
        notes: what was missing.
        sections: which sections to render (a repair's best round shows no sample table).
    """

    prefix: str
    title: str
    path: Path
    plots: dict[str, str] = field(default_factory=dict)
    dead_title: str = ""
    gradient_facts: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    action_count: int = 0
    findings: list[Finding] | None = None
    samples: SampleTable | None = None
    notes: list[str] = field(default_factory=list)
    sections: tuple[str, ...] = ("training", "gradients", "layers", "findings", "samples", "lr_find",
                                 "explanations")
    lr_find: dict[str, Any] | None = None
    explanations: ExplanationsView | None = None
    # A multi-target run: one line per task and per pair of tasks (report.tasks).
    task_facts: list[str] = field(default_factory=list)


def _gradient_facts(run: RunReport) -> list[str]:
    steps = run.steps
    if steps is None or "grad_norm" not in steps:
        return []
    events = spike_events(steps, run.actions)
    facts = [f"{fmt(len(steps))} steps", f"{fmt(len(events.skipped))} skipped (spike)",
             f"{fmt(len(events.rollbacks))} rollbacks"]
    if "clip_threshold" in steps and steps["clip_threshold"].notna().any():
        share = clipped_share(steps)
        weights = steps.groupby("epoch").size().reindex(share.index)
        overall = float(np.average(share, weights=weights)) if len(share) else math.nan
        facts.append(f"{fmt(overall, percent=True)} of steps clipped")
    if "accum_k" in steps and steps["accum_k"].notna().any():
        k = steps["accum_k"]
        facts.append(f"K {fmt(k.min())}" + (f" to {fmt(k.max())}" if k.max() != k.min() else ""))
    return facts


def run_view(run: RunReport, figures: dict[str, go.Figure], *, prefix: str, title: str,
             sections: tuple[str, ...] = RunView.sections, top_rows: int = TOP_ROWS) -> RunView:
    """Build the figures of ``run`` into ``figures`` (ids prefixed) and the view that places them."""
    view = RunView(prefix=prefix, title=title, path=run.path, notes=list(run.notes), sections=sections,
                   findings=run.findings)

    def add(key: str, fig: go.Figure | None) -> None:
        if fig is not None:
            figures[f"{prefix}-{key}"] = fig
            view.plots[key] = f"{prefix}-{key}"

    if "training" in sections:
        add("curves", training_curves(run.steps, run.epochs, run.test))
        add("tasks", task_curves(run.steps, run.epochs))
        view.task_facts = task_facts(run.steps, run.epochs)
    if "gradients" in sections:
        add("gradients", gradient_trajectories(run.steps, run.actions))
        view.gradient_facts = _gradient_facts(run)
        view.actions = (run.actions or [])[:MAX_ACTIONS]
        view.action_count = len(run.actions or [])
    if "layers" in sections:
        add("layer_grad", layer_heatmap(run.layers, "grad_norm"))
        stat = dead_unit_stat(run.layers)
        if stat is not None:
            add("layer_dead", layer_heatmap(run.layers, stat))
            view.dead_title = _DEAD_TITLES[stat]
    if run.lr_find is not None and "lr_find" in sections:
        add("lr_find", lr_find_figure(run.lr_find))
        view.lr_find = run.lr_find
        if run.steps is None and run.findings is None:  # an lr-find folder: nothing else to show
            view.sections = ("lr_find",)
            view.notes = [n for n in view.notes if "lr_find" in n]
    if run.explanations is not None and "explanations" in sections:
        view.explanations = explanations_view(run.explanations)
    if "samples" in view.sections and run.sample_issues is not None:
        view.samples = build_sample_table(run.sample_issues, config=run.config, schema=run.data_schema,
                                          limit=top_rows,
                                          why=view.explanations.why() if view.explanations else None)
        add("confusion", confusion_figure(run.sample_issues, run.classes))
    return view


def _evidence_value(value: Any) -> str:
    # Integers as written (they are often sample indices or steps: no thousands separator),
    # floats to 4 significant digits.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return fmt(value)


def evidence_items(evidence: dict[str, Any], *, max_items: int = 12) -> list[tuple[str, str]]:
    """Evidence as (key, short text): numbers to 4 significant digits, long lists cut."""
    items = []
    for key, value in evidence.items():
        if isinstance(value, list | tuple):
            shown = ", ".join(_evidence_value(v) for v in value[:max_items])
            text = f"[{shown}{f', ... ({len(value)} in all)' if len(value) > max_items else ''}]"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}: {_evidence_value(v)}" for k, v in list(value.items())[:max_items])
        else:
            text = _evidence_value(value)
        items.append((str(key), text))
    return items


@cache
def plotly_js() -> str:
    """plotly.js as shipped inside the installed plotly package (no network)."""
    from plotly.offline import get_plotlyjs

    # "</script" cannot occur inside a script element; plotly's bundle has none, but a
    # future bundle must not be able to break the page.
    return get_plotlyjs().replace("</script", "<\\/script")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.globals["evidence_items"] = evidence_items
    return env


def render_report(report: Report, *, top_rows: int = TOP_ROWS) -> str:
    """The page of ``report`` as one HTML string.

    Args:
        report: from :func:`read_report`.
        top_rows: sample (and changed-sample) rows embedded in the page.

    Returns:
        the HTML text (plotly.js, CSS, figures and data inlined; nothing is fetched).
    """
    figures: dict[str, go.Figure] = {}
    views: list[RunView] = []
    repair: RepairTables | None = None
    if isinstance(report, RepairReport):
        add_rounds = rounds_figure(report)
        if add_rounds is not None:
            figures["repair-rounds"] = add_rounds
        repair = repair_tables(report, limit=top_rows)
        if report.round_0 is not None:
            views.append(run_view(report.round_0, figures, prefix="r0",
                                  title="Round 0: the diagnosis that drove the repair", top_rows=top_rows))
        if report.best is not None:
            views.append(run_view(report.best, figures, prefix="best", title=f"Best round ({report.best_round})",
                                  sections=("training", "gradients", "layers", "findings"), top_rows=top_rows))
    else:
        views.append(run_view(report, figures, prefix="run", title="", top_rows=top_rows))
    summary: Summary = summarize(report)
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report, is_repair=isinstance(report, RepairReport), summary=summary, views=views, repair=repair,
        notes=report.notes if isinstance(report, RepairReport) else [],
        figures_json=Markup(figures_json(figures)), plotly_js=Markup(plotly_js()), plot_ids=set(figures),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        page_title=html.escape(summary.title), script_safe=script_safe,
    )


def save_report(report: Report, out: str | Path, *, top_rows: int = TOP_ROWS) -> Path:
    """Render ``report`` (already read) to ``out`` atomically; returns ``out``."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, render_report(report, top_rows=top_rows))
    return target


def write_report(run_dir: str | Path, out: str | Path | None = None, *, top_rows: int = TOP_ROWS) -> Path:
    """Render ``report.html`` of a run directory or repair folder.

    Args:
        run_dir: a run directory (demo, fit, diagnose) or a repair output folder.
        out: where to write; default ``run_dir/report.html``.
        top_rows: sample rows embedded in the page (the CSV holds them all).

    Returns:
        the path written.

    Raises:
        RunDirError: ``run_dir`` is missing or holds no run.
    """
    report = read_report(run_dir)
    return save_report(report, out if out is not None else Path(run_dir) / "report.html", top_rows=top_rows)
