"""The run directory: everything a run knows, on disk (see ARCHITECTURE.md)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from trainground.engine.atomic import atomic_write_text
from trainground.errors import RunDirError

# Files any run directory holds; later stages add theirs to the same folder.
_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints", "model.safetensors")


class RunDir:
    """Paths of one run's files, and the rules for creating, reusing and overwriting it.

    Layout::

        config.yaml          what was asked (fully resolved)
        metrics.jsonl        per-step and per-epoch scalars
        layers.parquet       per-layer statistics (monitors)
        samples.parquet      per-sample learning curves (recorder)
        sample_issues.csv    one row per sample (sample checks)
        findings.json        run/layer/dataset findings
        actions.jsonl        what was repaired, when, why
        checkpoints/         atomic, resumable
        model.safetensors    final weights (+ model spec, data schema, classes as metadata)
        report.html          the report
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    layers = property(lambda self: self.path / "layers.parquet")
    samples = property(lambda self: self.path / "samples.parquet")
    sample_issues = property(lambda self: self.path / "sample_issues.csv")
    findings = property(lambda self: self.path / "findings.json")
    actions = property(lambda self: self.path / "actions.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    model = property(lambda self: self.path / "model.safetensors")
    report = property(lambda self: self.path / "report.html")

    def is_run(self) -> bool:
        """Whether the folder holds anything a trainground run writes."""
        return any((self.path / name).exists() for name in _MARKERS)

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False) -> RunDir:
        """A fresh, empty run directory at ``path``.

        An existing non-empty folder is an error unless ``overwrite`` is set, and even
        then only a folder that is a trainground run is deleted: ``--overwrite`` must
        never be able to wipe a folder of the user's own files.
        """
        run = cls(path)
        if run.path.exists():
            if not run.path.is_dir():
                raise RunDirError(f"{run.path}: exists and is not a folder; choose another --out")
            if any(run.path.iterdir()):
                if not overwrite:
                    raise RunDirError(
                        f"{run.path}: run directory already exists; pass --overwrite to replace it, "
                        "--resume to continue it, or choose another --out"
                    )
                if not run.is_run():
                    raise RunDirError(
                        f"{run.path}: not a trainground run directory (no config.yaml, metrics.jsonl or "
                        "checkpoints/); refusing to delete it even with --overwrite"
                    )
                shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory (for resume, predict, report)."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"{run.path}: no such run directory")
        if not run.is_run():
            raise RunDirError(f"{run.path}: not a trainground run directory (no config.yaml or checkpoints/)")
        return run

    @staticmethod
    def new_path(root: str | Path, prefix: str) -> Path:
        """``root/<prefix>-YYYYmmdd-HHMMSS``, with a numeric suffix if that exists already."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root) / f"{prefix}-{stamp}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config.is_file():
            raise RunDirError(f"{self.config}: missing; this run directory cannot be resumed")
        with open(self.config, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
