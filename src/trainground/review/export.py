"""``trainground review RUN --export corrected.csv``: the input table with the decisions applied.

Two files are written (both refused if they exist, unless ``overwrite``):

- ``corrected.csv``: for a CSV/Parquet source, the input table as it was, row for row, with
  the target column set to the decided labels and excluded rows left out; for an image
  folder or a builtin dataset (no table to copy), one row per sample: ``index``,
  ``source`` (image folders), ``label``.
- ``corrected.changes.csv``: one row per reviewed sample: ``index, source, action,
  old_label, new_label, reviewer, at, applied, note``. A conflict (reviewers disagree) is
  listed with ``applied`` false and its sample left as given. This is the file
  ``trainground repair --decisions`` reads as fixed labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainground.engine.atomic import atomic_write_text
from trainground.engine.rundir import check_output_file
from trainground.errors import RunDirError
from trainground.review.run import ReviewRun
from trainground.review.store import Decision, ReviewStore

CHANGE_COLUMNS = ["index", "source", "action", "old_label", "new_label", "reviewer", "at", "applied", "note"]


@dataclass
class Exported:
    table: Path
    changes: Path
    rows: int
    relabelled: int
    excluded: int
    conflicts: int


def changes_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.changes.csv")


def changes_frame(store: ReviewStore) -> pd.DataFrame:
    """Every sample's current decision (conflicts as one row per reviewer, not applied)."""
    applied, conflicts = store.effective()
    rows = [_change_row(d, True, "") for d in applied.values()]
    for decisions in conflicts.values():
        note = "conflict: " + "; ".join(f"{d.reviewer} {d.action} {d.new_label or ''}".strip() for d in decisions)
        rows += [_change_row(d, False, note) for d in decisions]
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS).sort_values(["index", "reviewer"], kind="stable")


def _change_row(d: Decision, applied: bool, note: str) -> dict:
    return {"index": d.sample, "source": d.source, "action": d.action, "old_label": d.old_label,
            "new_label": d.new_label, "reviewer": d.reviewer, "at": d.at, "applied": applied, "note": note}


def corrected_frame(run: ReviewRun, store: ReviewStore) -> pd.DataFrame:
    """The corrected table (see the module docstring)."""
    applied, _ = store.effective()
    source = run.source
    suffix = Path(source).suffix.lower()
    if source and not source.startswith("builtin:") and suffix in (".csv", ".parquet", ".pq"):
        from trainground.data.files import read_table

        frame = read_table(Path(source))
        target = run.target
        if not target or target not in frame.columns:
            raise RunDirError(f"{source}: the run's target column {target!r} is not in the table; cannot apply "
                              "the decisions")
        frame = frame.copy()
        # Decided labels in the column's own type: "3" back to 3 when the column holds integers.
        values = {str(v): v for v in frame[target].dropna().unique()}
        column = frame[target].astype(object)
        keep = pd.Series(True, index=frame.index)
        for index, d in applied.items():
            if not 0 <= index < len(frame):
                continue
            if d.action == "exclude":
                keep.iloc[index] = False
            elif d.new_label is not None:
                column.iloc[index] = values.get(d.new_label, d.new_label)
        frame[target] = column
        return frame[keep.to_numpy()]
    issues = pd.read_csv(run.issues, dtype={"given_label": str}, keep_default_na=False, na_values=[""])
    out = pd.DataFrame({"index": issues["index"]})
    if "source" in issues.columns:
        out["source"] = issues["source"]
    labels = issues["given_label"].astype(object).to_numpy()
    keep = []
    for p, index in enumerate(issues["index"].astype(int)):
        d = applied.get(index)
        if d is not None and d.action != "exclude" and d.new_label is not None:
            labels[p] = d.new_label
        keep.append(d is None or d.action != "exclude")
    out["label"] = labels
    return out[keep]


def export(run: ReviewRun, store: ReviewStore, out: str | Path, *, overwrite: bool = False) -> Exported:
    """Write the corrected table to ``out`` and the record of every decision beside it."""
    out = Path(out)
    changes = changes_path(out)
    if run.source and Path(run.source).resolve() in (out.resolve(), changes.resolve()):
        raise RunDirError(f"{out}: is the run's data source; write the corrected table somewhere else")
    check_output_file(out, overwrite=overwrite)
    check_output_file(changes, overwrite=overwrite)
    record = changes_frame(store)
    table = corrected_frame(run, store)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        from trainground.engine.atomic import atomic_write

        atomic_write(out, lambda fh: table.to_parquet(fh, index=False))
    else:
        atomic_write_text(out, table.to_csv(index=False))
    atomic_write_text(changes, record.to_csv(index=False))
    done = record[record["applied"]]
    return Exported(table=out, changes=changes, rows=len(table),
                    relabelled=int((done["action"].isin(["accept", "relabel"]) & (done["old_label"] != done["new_label"])).sum()),
                    excluded=int((done["action"] == "exclude").sum()),
                    conflicts=int(record.loc[~record["applied"], "index"].nunique()))
