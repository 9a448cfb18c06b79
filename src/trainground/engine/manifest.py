"""The run manifest: the marker that only trainground writes, and the list of what a run created.

``--overwrite`` deletes what this list names and nothing else: a folder that merely holds
a file called ``config.yaml`` is not a run, and a user's notes put into a run directory
survive (the overwrite refuses instead). Names are recorded *before* the file is written,
so a crash between the two leaves a name without a file (harmless), never a file of ours
without its name.

File ``.trainground-run.json``::

    {"format": "trainground.run/1", "created_folder": true, "entries": ["config.yaml", ...]}

``entries`` are names directly inside the run directory (a listed folder, e.g.
``checkpoints``, is ours with everything in it).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from trainground.errors import RunDirError

MANIFEST_NAME = ".trainground-run.json"
FORMAT = "trainground.run/1"
LOCK_NAME = ".trainground.lock"
# How far above a written file the manifest is looked for (run/checkpoints/step-1.pt is 2).
_SEARCH_DEPTH = 3


def manifest_path(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / MANIFEST_NAME


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when it has none; a damaged one is an error."""
    path = manifest_path(folder)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: damaged run manifest ({type(err).__name__}); delete the folder by hand") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), list):
        raise RunDirError(f"{path}: not a run manifest of this trainground version (format {FORMAT})")
    return data


def _write(folder: Path, data: dict[str, Any]) -> None:
    # Not through atomic.py (which calls back into this module): same rename dance, no hook.
    path = manifest_path(folder)
    tmp = folder / f"{MANIFEST_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def start_manifest(folder: Path, *, created_folder: bool) -> None:
    """A new, empty manifest in ``folder`` (which this process just created or found empty)."""
    _write(folder, {"format": FORMAT, "created_folder": created_folder, "entries": [LOCK_NAME]})


def record(folder: str | os.PathLike[str], *names: str) -> None:
    """Add ``names`` (entries directly inside ``folder``) to its manifest, if it has one."""
    folder = Path(folder)
    data = read_manifest(folder)
    if data is None:
        return
    new = [n for n in names if n not in data["entries"]]
    if new:
        data["entries"].extend(new)
        _write(folder, data)


def note_written(path: str | os.PathLike[str]) -> None:
    """Record ``path`` in the manifest of the nearest run directory above it (if any).

    Called by the atomic writers before they write, so every file trainground writes
    into a run directory is listed without each writer having to remember it.
    """
    path = Path(path)
    child, parent = path, path.parent
    for _ in range(_SEARCH_DEPTH):
        if manifest_path(parent).is_file():
            record(parent, child.name)
            return
        child, parent = parent, parent.parent


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path``, listed in the run's manifest first (a folder of parts, ``checkpoints/``):
    a crash between the two must never leave a folder of ours that the manifest does not list."""
    path = Path(path)
    if not path.is_dir():
        note_written(path)
        path.mkdir(parents=True, exist_ok=True)
    return path


def foreign_entries(folder: Path, data: dict[str, Any]) -> list[str]:
    """Entries of ``folder`` its manifest does not list (temporary files of ours excluded)."""
    listed = set(data["entries"]) | {MANIFEST_NAME}
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name in listed or _is_our_tmp(name, listed):
            continue
        foreign.append(name)
    return foreign


def _is_our_tmp(name: str, listed: set[str]) -> bool:
    # atomic.py's temporary files are ".<target>.<random>.tmp"; the manifest's own "<manifest>.<pid>.tmp".
    if not name.endswith(".tmp"):
        return False
    return any(name.startswith(f".{n}.") or name.startswith(f"{n}.") for n in listed)


def remove_listed(folder: Path, data: dict[str, Any], *, keep: tuple[str, ...] = ()) -> None:
    """Delete what the manifest lists (and our temporary files), then the manifest itself."""
    import shutil

    listed = set(data["entries"]) | {MANIFEST_NAME}
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name in keep or not (name in listed or _is_our_tmp(name, listed)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
