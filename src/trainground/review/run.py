"""What the review reads from a run directory or a repair folder, and where it keeps its decisions.

A run directory (``demo``, ``fit``, ``diagnose``) is reviewed from its own
``sample_issues.csv`` and ``model.safetensors``. A repair folder is reviewed from its
round 0 (the diagnosis of the data as given), with the repair's ``changes.csv`` shown as
one more piece of evidence. Either way the decisions live in ``review.sqlite`` in the
folder named on the command line, listed in its manifest before the file is created.

Nothing here reads a path that came from a request: the only files are those below the
folder and the data source its ``config.yaml`` names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainground.engine.manifest import read_manifest, record
from trainground.errors import RunDirError

DB_NAME = "review.sqlite"
# SQLite's write-ahead log and its index: written beside the database, listed with it.
DB_SIDE_FILES = (f"{DB_NAME}-wal", f"{DB_NAME}-shm")


@dataclass
class ReviewRun:
    """The files one review reads.

    Attributes:
        folder: the run directory or repair folder named on the command line.
        issues: the ``sample_issues.csv`` reviewed.
        model: the ``model.safetensors`` whose representation gives the neighbours (may not exist).
        config: the run's ``config.yaml`` (data source, target, loading options).
        changes: the repair's ``changes.csv`` when the folder is a repair folder.
        explanations: the ``explanations.json`` of ``trainground explain`` when one exists.
    """

    folder: Path
    issues: Path
    model: Path
    config: dict[str, Any] = field(default_factory=dict)
    changes: Path | None = None
    explanations: Path | None = None

    @property
    def db(self) -> Path:
        return self.folder / DB_NAME

    @property
    def source(self) -> str:
        return str((self.config.get("data") or {}).get("source") or "")

    @property
    def target(self) -> str | None:
        return (self.config.get("data") or {}).get("target")

    def model_meta(self) -> dict[str, Any]:
        """``data_schema`` and ``classes`` of the model file (its header only), or {}."""
        if not self.model.is_file():
            return {}
        from safetensors import safe_open

        try:
            with safe_open(str(self.model), "pt") as fh:
                meta = fh.metadata() or {}
        except Exception:  # noqa: BLE001 - a damaged model file costs the thumbnails and neighbours only
            return {}
        return {k: json.loads(v) for k, v in meta.items() if k in ("data_schema", "classes", "model")}


def open_review_run(path: str | Path) -> ReviewRun:
    """The files to review in ``path`` (a run directory or a repair folder).

    Raises:
        RunDirError: ``path`` is no folder, or holds no ``sample_issues.csv`` to review.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such run directory")
    base, changes = folder, None
    if (folder / "metrics.json").is_file() and (folder / "round_0").is_dir():
        base = folder / "round_0"
        changes = folder / "changes.csv" if (folder / "changes.csv").is_file() else None
    issues = base / "sample_issues.csv"
    if not issues.is_file():
        raise RunDirError(f"{folder}: has no sample_issues.csv to review; run `trainground diagnose` (or repair) "
                          "first")
    config_file = folder / "config.yaml" if (folder / "config.yaml").is_file() else base / "config.yaml"
    config: dict[str, Any] = {}
    if config_file.is_file():
        try:
            config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RunDirError(f"{config_file}: cannot be read ({type(err).__name__})") from None
    explanations = next((p for p in (folder / "explanations.json", base / "explanations.json") if p.is_file()), None)
    return ReviewRun(folder=folder, issues=issues, model=base / "model.safetensors", config=config,
                     changes=changes, explanations=explanations)


def claim_db(run: ReviewRun) -> None:
    """List ``review.sqlite`` (and its WAL files) in the folder's manifest before SQLite creates them.

    A ``review.sqlite`` that a manifest exists for but does not list is the user's file, not
    ours: refused rather than written into.
    """
    manifest = read_manifest(run.folder)
    if manifest is None:
        return  # a folder of an older trainground, or a plain folder: nothing to list
    if run.db.exists() and DB_NAME not in manifest["entries"]:
        raise RunDirError(f"{run.db}: exists and is not the review file of this run (the run manifest does not "
                          "list it); move it away to review this run")
    record(run.folder, DB_NAME, *DB_SIDE_FILES)
