"""The run directory: everything a run knows, on disk (see ARCHITECTURE.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from trainground.engine.atomic import atomic_write_text
from trainground.engine.lock import RunLock, is_locked_elsewhere
from trainground.engine.manifest import (
    LOCK_NAME,
    MANIFEST_NAME,
    foreign_entries,
    manifest_path,
    note_written,
    read_manifest,
    record,
    remove_listed,
    start_manifest,
)
from trainground.errors import RunDirError

# Files a run directory of a trainground older than the manifest holds: enough to read it
# (report, predict, resume), never to delete it.
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
        """Whether the folder holds a trainground run (its manifest, or the files of an older version)."""
        return manifest_path(self.path).is_file() or any((self.path / name).exists() for name in _MARKERS)

    def record(self, *names: str) -> None:
        """List ``names`` (entries of this folder) in the manifest before writing them."""
        record(self.path, *names)

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path | None] = (),
               resumable: bool = False) -> RunDir:
        """A fresh, empty run directory at ``path``, locked by this process.

        An existing non-empty folder is an error unless ``overwrite`` is set, and even
        then only what the folder's manifest lists is deleted: a folder trainground did
        not create, or one holding anything else (a user's notes), is refused. So is a
        folder that holds one of ``inputs`` (the data being read, a config file).
        ``resumable``: the caller has a ``--resume`` to suggest (only ``fit`` does).
        """
        run = cls(path)
        check_inputs_outside(run.path, inputs)
        existed = run.path.exists() or run.path.is_symlink()
        created_folder = not existed
        if existed:
            if not run.path.is_dir():
                raise RunDirError(f"{run.path}: exists and is not a folder; choose another --out")
            if any(not _start_leftover(entry.name) for entry in run.path.iterdir()):
                if not overwrite:
                    raise RunDirError(
                        f"{run.path}: run directory already exists; pass --overwrite to replace it"
                        f"{', --resume to continue it' if resumable and run.is_run() else ''}, or choose another --out"
                    )
                created_folder = run._clear_for_overwrite()
        note_written(run.path)  # a round folder is listed in its parent's manifest before it exists
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunDirError(f"{run.path}: a file is in the way of this folder; choose another --out") from None
        except OSError as err:
            raise RunDirError(f"{run.path}: cannot create the run directory ({err.strerror or err})") from None
        run._lock = RunLock(run.path / LOCK_NAME)
        start_manifest(run.path, created_folder=created_folder)
        return run

    def _clear_for_overwrite(self) -> bool:
        """Delete the earlier run in this folder (only what its manifest lists); whether we created the folder."""
        if self.path.is_symlink():
            raise RunDirError(f"{self.path}: is a symbolic link; refusing to replace what it points to, "
                              "pass the real folder as --out")
        data = read_manifest(self.path)
        if data is None:
            older = " (or a run of a trainground older than the manifest)" if self.is_run() else ""
            raise RunDirError(f"{self.path}: not a trainground run directory{older}: it has no "
                              f"{MANIFEST_NAME}; refusing to delete it even with --overwrite. "
                              "Delete it yourself or choose another --out")
        if is_locked_elsewhere(self.path / LOCK_NAME):
            raise RunDirError(f"{self.path}: another trainground process is writing this run directory; "
                              "wait for it to finish or choose another --out")
        foreign = _foreign_tree(self.path, data)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RunDirError(f"{self.path}: holds files trainground did not write ({shown}); refusing to "
                              "overwrite. Move them out or choose another --out")
        remove_listed(self.path, data, keep=(LOCK_NAME,))
        return bool(data.get("created_folder", False))

    def discard(self) -> None:
        """Remove what this run wrote (a start that failed before training): the folder too if we made it."""
        data = read_manifest(self.path)
        if data is None:
            return
        remove_listed(self.path, data)
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
        if data.get("created_folder"):
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty: nothing of the user's is removed

    @classmethod
    def open(cls, path: str | Path, *, write: bool = False) -> RunDir:
        """An existing run directory (for resume, predict, report).

        ``write=True`` (resume) takes the run's lock and removes the temporary files of a
        write that a crash interrupted.
        """
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"{run.path}: no such run directory")
        if not run.is_run():
            raise RunDirError(f"{run.path}: not a trainground run directory (no config.yaml or checkpoints/)")
        if write:
            run._lock = RunLock(run.path / LOCK_NAME)
            for folder in (run.path, run.checkpoints):
                for stale in folder.glob(".*.tmp") if folder.is_dir() else ():
                    stale.unlink(missing_ok=True)
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
        try:
            with open(self.config, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise RunDirError(f"{self.config}: damaged ({type(err).__name__}); the run's config cannot be read") from None
        if not isinstance(loaded, dict):
            raise RunDirError(f"{self.config}: damaged (not a mapping); the run's config cannot be read")
        return loaded


def check_output_file(path: str | Path, *, overwrite: bool) -> None:
    """Refuse to write the file ``path`` over a folder, or over a file trainground did not write
    (one its run directory's manifest does not list) unless ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"{path}: is a folder; --out takes a file name")
    if path.exists() and not overwrite:
        data = read_manifest(path.parent) if path.parent.is_dir() else None
        if data is None or path.name not in data["entries"]:
            raise RunDirError(f"{path}: exists and is not a file of a trainground run (no run manifest lists it); "
                              "pass --overwrite to replace it or choose another --out")


def check_inputs_outside(out: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output folder that holds one of the inputs (replacing it would delete them), or that
    lies inside an input folder (an image folder would read it as one more class)."""
    out = Path(out).resolve()
    for source in inputs:
        if source is None or str(source).startswith("builtin:"):
            continue
        resolved = Path(source).resolve()
        if resolved == out or out in resolved.parents:
            raise RunDirError(f"{source}: is inside the output folder (--out {out}); write the run somewhere else "
                              "(replacing the folder would delete this input)")
        if resolved.is_dir() and resolved in out.parents:
            raise RunDirError(f"--out {out} is inside the input folder {source}; write the run somewhere else "
                              "(in an image folder it would become a class of every later run)")


def _start_leftover(name: str) -> bool:
    # What a start killed before its manifest existed leaves: the lock, a half-written manifest.
    return name == LOCK_NAME or (name.startswith(MANIFEST_NAME + ".") and name.endswith(".tmp"))


def _foreign_tree(folder: Path, data: dict[str, Any]) -> list[str]:
    """Entries not listed by the manifest, here and in listed sub-runs (which have their own)."""
    found = foreign_entries(folder, data)
    for name in data["entries"]:
        sub = folder / name
        if sub.is_dir() and not sub.is_symlink():
            sub_data = read_manifest(sub)
            if sub_data is not None:
                found += [f"{name}/{f}" for f in _foreign_tree(sub, sub_data)]
    return found
