"""Where a study lives, and the tune folder that several workers share.

- ``None``: ``sqlite:///OUT/study.db`` (one file beside the trials).
- ``journal:PATH``: Optuna's journal file (append-only log with a file lock): the safe
  choice for many processes on one machine.
- any other string: an SQLAlchemy URL (``sqlite:///...``, ``postgresql://user@host/db``)
  for workers on many machines.

The tune folder is shared by every worker of a study: its manifest is updated under an
exclusive ``flock`` on ``.tune.lock`` so that two workers never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainground.engine.manifest import manifest_path, read_manifest, start_manifest
from trainground.errors import ConfigError, RunDirError

try:  # POSIX; elsewhere one worker per folder (documented)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DB_NAME = "study.db"
LOCK_NAME = ".tune.lock"


def storage_url(storage: str | None, out: Path) -> str:
    """The storage string a worker opens (the default: sqlite in ``out``)."""
    return storage if storage else f"sqlite:///{(out / DB_NAME).resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (``journal:PATH`` or an SQLAlchemy URL)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        path = url.removeprefix("journal:")
        if not path:
            raise ConfigError("--storage journal:PATH needs a file path")
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError(f"--storage {url!r}: expected an SQLAlchemy URL (sqlite:///file.db, postgresql://...) "
                          "or journal:PATH")
    try:
        # A worker waits up to 60 s for SQLite's write lock instead of failing at once.
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)
    except ImportError as err:
        raise ConfigError(f"--storage {url!r}: the database driver is not installed ({err}); for PostgreSQL "
                          "pip install 'trainground[tune]' (psycopg)") from None


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold the tune folder's lock (manifest updates, summary and best config)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def open_tune_folder(out: Path) -> None:
    """Create ``out`` (with a manifest) or join it when it is a tune folder; anything else is refused."""
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        if manifest_path(out).is_file():
            data = read_manifest(out) or {}
            if LOCK_NAME not in data.get("entries", []):
                raise RunDirError(f"{out}: holds a trainground run, not a tune folder; choose another --out")
            return
        others = [e.name for e in out.iterdir() if e.name != LOCK_NAME]
        if others:
            raise RunDirError(f"{out}: not empty and not a tune folder ({', '.join(sorted(others)[:3])}...); "
                              "choose another --out")
        start_manifest(out, created_folder=not existed)
        from trainground.engine.manifest import record

        record(out, LOCK_NAME)
