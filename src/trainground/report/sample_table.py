"""The sample-issue table of the page: the top N flagged samples, worst first, with the
issue types each has (for the filter), and a sort key per cell (for the sortable headers).

Only these N rows are embedded; the page says how many more the CSV holds, so a run of
100k samples costs the page no more than one of 1k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from trainground.diagnosis.sample_issues import top_sample_issues
from trainground.report.thumbnails import sample_thumbnails

TOP_ROWS = 200

CellKind = Literal["num", "text", "img"]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: CellKind


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str | float  # what the header's sort compares (numbers as numbers)
    kind: CellKind = "text"


@dataclass
class SampleTable:
    """Rows ready for the template.

    Attributes:
        columns: header cells.
        rows: ``(issue types, cells)`` per row.
        issue_counts: flagged samples per issue type in the whole table (not just the shown rows).
        total: samples in ``sample_issues.csv``.
        flagged: samples with at least one issue.
        notes: e.g. why thumbnails are missing.
    """

    columns: list[Column]
    rows: list[tuple[list[str], list[Cell]]]
    issue_counts: dict[str, int]
    total: int
    flagged: int
    notes: list[str] = field(default_factory=list)

    @property
    def shown(self) -> int:
        return len(self.rows)


def issue_types(table: pd.DataFrame) -> list[str]:
    """Issue types of the table's ``is_<type>_issue`` columns, in column order."""
    return [c[3:-6] for c in table.columns if c.startswith("is_") and c.endswith("_issue")]


def _score(value: Any) -> Cell:
    number = float(value) if value is not None and pd.notna(value) else math.nan
    return Cell("-" if math.isnan(number) else f"{number:.3f}", number if not math.isnan(number) else 2.0, "num")


def _label(value: Any) -> Cell:
    text = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    try:
        return Cell(text, float(text))
    except ValueError:
        return Cell(text, text)


def build_sample_table(table: pd.DataFrame, *, config: dict | None = None, schema: dict | None = None,
                       limit: int = TOP_ROWS, why: dict[int, str] | None = None) -> SampleTable:
    """The top ``limit`` flagged rows of ``sample_issues.csv`` as template rows.

    Args:
        table: the full ``sample_issues.csv``.
        config: the run's config (data source, for thumbnails).
        schema: the data schema stored with the model (image-like data gets thumbnails).
        limit: rows embedded in the page.
        why: sample index -> why it is suspected, from ``explanations.json`` (a column when given).

    Returns:
        the table; ``rows`` is empty when nothing is flagged.
    """
    types = issue_types(table)
    flags = table[[f"is_{t}_issue" for t in types]].astype(bool) if types else pd.DataFrame(index=table.index)
    counts = {t: int(flags[f"is_{t}_issue"].sum()) for t in types}
    top = top_sample_issues(table.assign(**{f"is_{t}_issue": flags[f"is_{t}_issue"] for t in types}), limit)
    thumbs, note = sample_thumbnails(config, schema, top["index"].astype(int).tolist()) if len(top) else ({}, None)
    columns = [Column("image", "image", "img")] if thumbs else []
    columns.append(Column("index", "index", "num"))
    if "source" in table:  # image data: the file, relative to the folder
        columns.append(Column("source", "file", "text"))
    columns += [Column("given", "given", "text"),
                Column("suggested", "suggested", "text")]
    if "predicted_label" in table:
        columns.append(Column("predicted", "predicted", "text"))
    columns.append(Column("issues", "issues", "text"))
    columns += [Column(f"{t}_score", f"{t.replace('_', ' ')} score", "num") for t in types if f"{t}_score" in table]
    if why:
        columns.append(Column("why", "why suspected (attribution)", "text"))
    rows = []
    for _, record in top.iterrows():
        kinds = [t for t in types if bool(record[f"is_{t}_issue"])]
        index = int(record["index"])
        cells = [Cell(thumbs.get(index, ""), index, "img")] if thumbs else []
        cells.append(Cell(str(index), index, "num"))
        if "source" in table:
            cells.append(_label(record.get("source")))
        cells += [_label(record.get("given_label")), _label(record.get("suggested_label"))]
        if "predicted_label" in table:
            cells.append(_label(record.get("predicted_label")))
        issues = ", ".join(k.replace("_", " ") for k in kinds)
        cells.append(Cell(issues, issues))
        cells += [_score(record[f"{t}_score"]) for t in types if f"{t}_score" in table]
        if why:
            cells.append(Cell(why.get(index, ""), why.get(index, "")))
        rows.append((kinds, cells))
    return SampleTable(columns=columns, rows=rows, issue_counts=counts, total=len(table),
                       flagged=int(flags.any(axis=1).sum()) if types else 0, notes=[note] if note else [])
