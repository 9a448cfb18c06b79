"""The repair section: accuracy per round against before/after, the paired test that kept
or rejected each round, the training rows per class, what the policies declined or
skipped, the actions taken per round, and the changed samples (``changes.csv``, top rows)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from trainground.report.model import RepairReport
from trainground.report.sample_table import Cell, Column
from trainground.report.style import BLUE, GREEN, base_layout, hover
from trainground.report.summary import fmt

TOP_CHANGES = 200


@dataclass
class RepairTables:
    """Template rows of the repair section.

    Attributes:
        rounds: header and rows of the per-round table.
        actions: ``(round, action, count, example reason)`` rows from ``actions.jsonl``.
        change_columns: header of the changed-samples table.
        changes: rows of the changed-samples table (``(action, cells)``), strongest evidence first
            (lowest score: scores are in [0, 1], low = bad, as in ``CheckResult``).
        change_counts: changed samples per action in the whole ``changes.csv``.
        total_changes: rows of ``changes.csv``.
        classes: header and rows of the class-count table (training rows per class, weights
            counted: as given, then after each round's actions), or empty rows.
        notes: what the policies declined (e.g. the model is too weak to relabel), skipped or
            had trimmed by the class-share cap, one line each.
    """

    rounds: tuple[list[str], list[list[str]]]
    actions: list[tuple[str, str, int, str]]
    change_columns: list[Column]
    changes: list[tuple[list[str], list[Cell]]]
    change_counts: dict[str, int]
    total_changes: int
    classes: tuple[list[str], list[list[str]]] = ([], [])
    notes: list[str] = field(default_factory=list)


def rounds_figure(report: RepairReport) -> go.Figure | None:
    """Validation and test accuracy per round, with the original data's as round 'before'."""
    if not report.rounds:
        return None
    fig = go.Figure()
    rounds = [r.get("round") for r in report.rounds]
    for key, name, colour in (("val_accuracy", "validation", BLUE), ("test_accuracy", "test", GREEN)):
        values = [r.get(key) for r in report.rounds]
        if all(v is None for v in values):
            continue
        fig.add_trace(go.Scatter(x=rounds, y=values, mode="lines+markers", name=f"{name} accuracy",
                                 line={"color": colour, "width": 2}, marker={"size": 8},
                                 **hover(f"round %{{x}}<br>{name} %{{y:.2%}}")))
        if report.before.get(key) is not None:
            fig.add_hline(y=report.before[key], line={"color": colour, "dash": "dot", "width": 1},
                          annotation_text=f"{name} before {fmt(report.before[key], percent=True)}",
                          annotation_position="bottom right", annotation_font_color=colour)
    if report.best_round is not None:
        fig.add_vline(x=report.best_round, line={"color": "#6B7280", "dash": "dash", "width": 1},
                      annotation_text="kept round", annotation_position="top left")
    base_layout(fig, height=320)
    fig.update_xaxes(title_text="round", dtick=1)
    fig.update_yaxes(tickformat=".0%", title_text="accuracy")
    return fig


def repair_tables(report: RepairReport, *, limit: int = TOP_CHANGES) -> RepairTables:
    header = ["round", "validation accuracy", "test accuracy", "trainings", "actions",
              "against the kept round (rows won / lost, one-sided p)", "run directory"]
    rows = []
    for r in report.rounds:
        acted = ", ".join(f"{k} {fmt(v)}" for k, v in (r.get("actions") or {}).items()) or "-"
        best = " (kept)" if r.get("round") == report.best_round else ""
        rows.append([f"{r.get('round')}{best}", fmt(r.get("val_accuracy"), percent=True),
                     fmt(r.get("test_accuracy"), percent=True), fmt(r.get("trainings")), acted,
                     _comparison(r.get("comparison")), str(r.get("run_dir") or "-")])
    ref = report.reference
    if ref:  # the keep rule's comparator in place of round 0 (repair.rounds)
        rows.append(["reference (no edit, trained as the repair rounds; the comparator, never kept)",
                     fmt(ref.get("val_accuracy"), percent=True), fmt(ref.get("test_accuracy"), percent=True),
                     fmt(ref.get("trainings")), "-", "-", "-"])
    per_round: Counter[tuple[str, str]] = Counter()
    reasons: dict[tuple[str, str], str] = {}
    for a in report.actions or []:
        key = (str(a.get("step")), str(a.get("action")))
        per_round[key] += 1
        reasons.setdefault(key, str(a.get("reason") or ""))
    actions = [(k[0], k[1], n, reasons[k]) for k, n in sorted(per_round.items(), key=lambda kv: (_num(kv[0][0]), kv[0][1]))]
    changes = report.changes if report.changes is not None else pd.DataFrame()
    columns = [Column(c, c.replace("_", " "), "num" if c in ("index", "score") else "text")
               for c in ("index", "action", "old_label", "new_label", "score", "reason") if c in changes]
    counts = {str(k): int(v) for k, v in changes["action"].value_counts().items()} if "action" in changes else {}
    top = changes.sort_values("score", ascending=True, kind="stable", na_position="last") if "score" in changes else changes
    table_rows = []
    for _, record in top.head(limit).iterrows():
        cells = []
        for col in columns:
            value = record[col.key]
            if col.kind == "num":
                number = float(value) if pd.notna(value) else float("nan")
                missing = math.isnan(number)
                text = str(int(number)) if col.key == "index" and not missing else f"{number:.3f}"
                cells.append(Cell(text, -1.0 if missing else number, "num"))
            else:
                text = "-" if pd.isna(value) else str(value)
                cells.append(Cell(text, text))
        table_rows.append(([str(record.get("action", ""))], cells))
    return RepairTables(rounds=(header, rows), actions=actions, change_columns=columns, changes=table_rows,
                        change_counts=counts, total_changes=len(changes), classes=_class_table(report.rounds),
                        notes=_notes(report.rounds))


def _comparison(comparison: dict | None) -> str:
    if not comparison:
        return "-"
    verdict = "kept" if comparison.get("kept", comparison.get("better")) else "rejected"
    text = (f"{verdict} against {_name(comparison.get('against'))}: +{comparison.get('wins')} / "
            f"-{comparison.get('losses')}, p = {fmt(comparison.get('p_value'))}")
    for test in comparison.get("non_inferiority") or []:
        text += (f"; not worse than {_name(test.get('against'))} by {fmt(100 * float(test.get('margin', 0)))} points: "
                 f"{'yes' if test.get('holds') else 'not shown'} (p = {fmt(test.get('p_value'))})")
    return text


def _name(k: object) -> str:
    """How a comparison names a round; -1 is the reference round (``repair.selection.REFERENCE``)."""
    return "the reference round" if k == -1 else f"round {k}"


def _class_table(rounds: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Rows per class: as given, then after each round's actions (weights counted)."""
    counted = [r for r in rounds if r.get("class_counts")]
    if not counted:
        return [], []
    labels = list(counted[0]["class_counts"])
    header = ["class", "given"] + [f"round {r.get('round')}" for r in counted]
    rows = [[label, fmt(counted[0]["class_counts"][label].get("given"))]
            + [fmt((r["class_counts"].get(label) or {}).get("after")) for r in counted] for label in labels]
    return header, rows


def _notes(rounds: list[dict]) -> list[str]:
    notes = []
    for r in rounds:
        k = r.get("round")
        notes += [f"after round {k}: {f.get('message')}" for f in r.get("findings") or []]
        for label, n in (r.get("class_cap") or {}).items():
            notes.append(f"after round {k}: {n} action(s) on class {label!r} dropped so it keeps at least "
                         "three quarters of its rows")
        notes += [f"after round {k}: policy {name} skipped ({why})" for name, why in
                  (r.get("skipped_policies") or {}).items()]
    return notes


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")
