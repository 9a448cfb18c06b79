"""The review's SQLite file: the decisions (the data the review produces) and an index of the samples.

Decisions are an append-only log: one row per click, never updated except to mark it undone
(``undone_at``, ``undone_by``). A reviewer's *current* decision on a sample is their latest
row not undone, so undo brings the one before back. Every decision is its own committed
transaction in WAL mode with ``synchronous=FULL``: a browser closed or a server killed with
``kill -9`` loses nothing that the page showed as saved. Two reviewers never overwrite each
other: each has their own rows, and where their current decisions disagree the sample is a
*conflict*, shown to both and applied by neither (:meth:`ReviewStore.effective`).

The ``samples`` table is derived from ``sample_issues.csv`` (rebuilt when that file
changes) so the page is served by indexed, paginated queries, never by loading the table.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd

Action = Literal["accept", "relabel", "keep", "exclude"]
ACTIONS: tuple[str, ...] = ("accept", "relabel", "keep", "exclude")
_ISSUE_COLUMN = re.compile(r"^is_([a-z0-9_]+)_issue$")
PAGE_SIZE = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample INTEGER NOT NULL,
    source TEXT,
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accept', 'relabel', 'keep', 'exclude')),
    old_label TEXT,
    new_label TEXT,
    undone_at TEXT,
    undone_by TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_sample ON decisions (sample, reviewer, id);
CREATE INDEX IF NOT EXISTS decisions_by_reviewer ON decisions (reviewer, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Decision:
    """One reviewer's current decision on one sample."""

    id: int
    sample: int
    source: str | None
    reviewer: str
    at: str
    action: str
    old_label: str | None
    new_label: str | None

    @property
    def effect(self) -> str:
        """What the decision does to the sample: ``"exclude"`` or ``"label:<the label it keeps>"``."""
        return "exclude" if self.action == "exclude" else f"label:{self.new_label}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class ReviewStore:
    """The decisions and the sample index of one review (``review.sqlite``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.connect() as db:
            db.executescript(_SCHEMA)
        self.issues: list[str] = self._meta_list("issues")
        self.classes: list[str] = self._meta_list("classes")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own (one per request: SQLite connections are not shared across threads)."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def _meta_list(self, key: str) -> list[str]:
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return [] if row is None or not row[0] else row[0].split("\n")

    # -- the sample index ------------------------------------------------------------------

    def index_samples(self, issues_csv: Path) -> None:
        """(Re)build the ``samples`` table from ``sample_issues.csv`` unless it is already current."""
        stat = issues_csv.stat()
        signature = f"{stat.st_size}:{stat.st_mtime_ns}"
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'signature'").fetchone()
            if row is not None and row[0] == signature:
                return
        frame = pd.read_csv(issues_csv, dtype={"given_label": str, "predicted_label": str, "suggested_label": str},
                            keep_default_na=False, na_values=[""])
        issues = [m.group(1) for c in frame.columns if (m := _ISSUE_COLUMN.match(str(c)))]
        issues = [i for i in issues if f"{i}_score" in frame.columns]
        flags = pd.DataFrame({i: frame[f"is_{i}_issue"].astype(str).str.lower().isin(("true", "1")) for i in issues})
        scores = pd.DataFrame({i: pd.to_numeric(frame[f"{i}_score"], errors="coerce") for i in issues})
        flagged = flags.any(axis=1) if issues else pd.Series(False, index=frame.index)
        # Worst first: a flagged sample's lowest score among its flagged issues (scores are low = bad).
        worst = scores.where(flags).min(axis=1).where(flagged, scores.min(axis=1)) if issues else 1.0
        n = len(frame)

        def column(name: str) -> pd.Series:
            return frame[name] if name in frame.columns else pd.Series([None] * n)

        rows = zip(frame["index"].astype(int), column("source"), column("given_label"), column("predicted_label"),
                   column("suggested_label"), pd.Series(worst, index=frame.index), flagged.astype(int),
                   *(flags[i].astype(int) for i in issues), *(scores[i] for i in issues), strict=True)
        issue_columns = "".join(f", f_{i} INTEGER, s_{i} REAL" for i in issues)
        names = ["idx", "source", "given", "predicted", "suggested", "worst", "flagged",
                 *(f"f_{i}" for i in issues), *(f"s_{i}" for i in issues)]
        classes = sorted({c for c in frame["given_label"].dropna().unique()} |
                         {c for c in frame["suggested_label"].dropna().unique()}, key=_natural)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TABLE IF EXISTS samples")
            db.execute("CREATE TABLE samples (idx INTEGER PRIMARY KEY, source TEXT, given TEXT, predicted TEXT, "
                       f"suggested TEXT, worst REAL, flagged INTEGER{issue_columns})")
            db.executemany(f"INSERT INTO samples ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           ([_sql(v) for v in r] for r in rows))
            db.execute("CREATE INDEX samples_worst ON samples (flagged, worst, idx)")
            db.execute("CREATE INDEX samples_given ON samples (given, worst)")
            for i in issues:  # the issue filter: that issue's flagged rows, already worst first
                db.execute(f"CREATE INDEX samples_{i} ON samples (f_{i}, worst, idx)")
            for key, value in (("signature", signature), ("issues", "\n".join(issues)),
                               ("classes", "\n".join(classes))):
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            db.execute("COMMIT")
        self.issues, self.classes = issues, classes

    def page(self, *, issue: str = "", given: str = "", max_score: float | None = None, status: str = "",
             flagged_only: bool = True, page: int = 0, size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
        """One page of samples, worst first, and how many match the filters."""
        where, params = self._where(issue=issue, given=given, max_score=max_score, status=status,
                                    flagged_only=flagged_only)
        with self.connect() as db:
            total = db.execute(f"SELECT COUNT(*) FROM samples s {where}", params).fetchone()[0]
            rows = db.execute(f"SELECT * FROM samples s {where} ORDER BY s.flagged DESC, s.worst, s.idx "
                              "LIMIT ? OFFSET ?", [*params, size, max(page, 0) * size]).fetchall()
        return [dict(r) for r in rows], int(total)

    def sample(self, index: int) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM samples WHERE idx = ?", (int(index),)).fetchone()
        return None if row is None else dict(row)

    def _where(self, *, issue: str, given: str, max_score: float | None, status: str, flagged_only: bool
               ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if flagged_only:
            clauses.append("s.flagged = 1")
        if issue:
            if issue not in self.issues:  # a name from the request never reaches the SQL text unchecked
                raise ValueError(f"unknown issue type {issue!r}; known: {', '.join(self.issues)}")
            clauses.append(f"s.f_{issue} = 1")
        if given:
            clauses.append("s.given = ?")
            params.append(given)
        if max_score is not None:
            clauses.append("s.worst <= ?")
            params.append(float(max_score))
        current = "EXISTS (SELECT 1 FROM decisions d WHERE d.sample = s.idx AND d.undone_at IS NULL)"
        if status == "undecided":
            clauses.append(f"NOT {current}")
        elif status == "decided":
            clauses.append(current)
        elif status:
            raise ValueError(f"unknown status {status!r}; known: undecided, decided")
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    # -- decisions -----------------------------------------------------------------------------

    def decide(self, *, sample: int, reviewer: str, action: str, new_label: str | None = None) -> Decision:
        """Record one decision (its own committed transaction) and return it.

        ``accept`` takes the suggested label, ``keep`` the given one, ``relabel`` ``new_label``
        (one of the known classes), ``exclude`` none.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        row = self.sample(sample)
        if row is None:
            raise KeyError(sample)
        old = row["given"]
        if action == "accept":
            new = row["suggested"]
        elif action == "keep":
            new = old
        elif action == "relabel":
            if new_label is None or (self.classes and new_label not in self.classes):
                raise ValueError(f"unknown label {new_label!r}; known: {', '.join(self.classes)}")
            new = new_label
        else:
            new = None
        with self.connect() as db:
            cursor = db.execute(
                "INSERT INTO decisions (sample, source, reviewer, at, action, old_label, new_label) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (int(sample), row["source"], reviewer, now(), action, old, new))
            decision_id = cursor.lastrowid
            got = db.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        return _decision(got)

    def undo(self, *, reviewer: str, sample: int | None = None) -> Decision | None:
        """Mark ``reviewer``'s latest live decision (on ``sample``, or on any sample) undone; return it."""
        query = "SELECT * FROM decisions WHERE reviewer = ? AND undone_at IS NULL"
        params: list[Any] = [reviewer]
        if sample is not None:
            query += " AND sample = ?"
            params.append(int(sample))
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
            if row is not None:
                db.execute("UPDATE decisions SET undone_at = ?, undone_by = ? WHERE id = ?", (now(), reviewer, row["id"]))
            db.execute("COMMIT")
        return None if row is None else _decision(row)

    def current(self, samples: Sequence[int] | None = None) -> dict[int, list[Decision]]:
        """Every reviewer's current decision, by sample (of ``samples``, or of all)."""
        query = ("SELECT d.* FROM decisions d WHERE d.undone_at IS NULL AND d.id = (SELECT MAX(e.id) FROM decisions e "
                 "WHERE e.sample = d.sample AND e.reviewer = d.reviewer AND e.undone_at IS NULL)")
        params: list[Any] = []
        if samples is not None:
            if not samples:
                return {}
            query += f" AND d.sample IN ({', '.join('?' * len(samples))})"
            params = [int(s) for s in samples]
        with self.connect() as db:
            rows = db.execute(query + " ORDER BY d.sample, d.reviewer", params).fetchall()
        out: dict[int, list[Decision]] = {}
        for row in rows:
            out.setdefault(int(row["sample"]), []).append(_decision(row))
        return out

    def history(self, sample: int) -> list[dict[str, Any]]:
        """Every decision ever made on ``sample`` (undone ones included), oldest first."""
        with self.connect() as db:
            return [dict(r) for r in db.execute("SELECT * FROM decisions WHERE sample = ? ORDER BY id", (int(sample),))]

    def effective(self) -> tuple[dict[int, Decision], dict[int, list[Decision]]]:
        """``(applied, conflicts)``: per sample the decision to apply when every reviewer's current
        decision agrees, and the samples where they do not (applied by no one)."""
        applied: dict[int, Decision] = {}
        conflicts: dict[int, list[Decision]] = {}
        for sample, decisions in self.current().items():
            if len({d.effect for d in decisions}) > 1:
                conflicts[sample] = decisions
            else:
                applied[sample] = max(decisions, key=lambda d: d.id)
        return applied, conflicts

    def counts(self) -> dict[str, int]:
        applied, conflicts = self.effective()
        with self.connect() as db:
            flagged = db.execute("SELECT COUNT(*) FROM samples WHERE flagged = 1").fetchone()[0]
        return {"flagged": int(flagged), "decided": len(applied), "conflicts": len(conflicts)}


def conflicting(decisions: Sequence[Decision]) -> bool:
    return len({d.effect for d in decisions}) > 1


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(id=row["id"], sample=row["sample"], source=row["source"], reviewer=row["reviewer"], at=row["at"],
                    action=row["action"], old_label=row["old_label"], new_label=row["new_label"])


def _sql(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _natural(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label
