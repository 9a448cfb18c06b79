"""Resumable checkpoints: model, optimizer, RNG, loop counters and callback state."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from trainground.engine.atomic import atomic_write, atomic_write_text
from trainground.engine.manifest import make_dirs
from trainground.errors import RunDirError

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^step-(\d{9})\.pt$")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step-{step:09d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary files of an interrupted write are ignored)."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], *, keep: int) -> Path:
    """Atomically write ``payload`` as the checkpoint of ``step``; keep the newest ``keep``.

    The SHA-256 of the file goes to ``step-N.pt.sha256``, written after it: the digest is
    also the commit mark, so a checkpoint without one (a crash in between) is never resumed.
    """
    make_dirs(directory)
    path = checkpoint_path(directory, step)
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda fh: fh.write(data))
    atomic_write_text(_digest_path(path), hashlib.sha256(data).hexdigest() + "\n")
    for old in list_checkpoints(directory)[: -max(keep, 1)]:
        _digest_path(old).unlink(missing_ok=True)  # digest first: a half-deleted pair is never resumed
        old.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """One checkpoint, verified against its digest; any damage is one :class:`RunDirError` line."""
    digest = _digest_path(path)
    if not digest.is_file():
        raise RunDirError(f"{path}: no checksum; its write was interrupted")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest.read_text(encoding="utf-8").strip():
        raise RunDirError(f"{path}: checksum mismatch; the file is damaged")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  a file this code did not write: torch's own text would suggest weights_only=False
        raise RunDirError(f"{path}: not a checkpoint this trainground can read") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path}: checkpoint format is not {CHECKPOINT_FORMAT}")
    return payload


def load_latest_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest intact checkpoint in ``directory``, or None if there is none.

    A damaged newer one is renamed ``*.damaged`` (kept for inspection, never resumed) and
    the previous one is used, with a warning; when none is intact, one :class:`RunDirError`.
    Temporary files of a write that a crash interrupted are removed.
    """
    if directory.is_dir():
        for stale in directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    paths = list_checkpoints(directory)
    if not paths:
        return None
    problems = []
    for path in reversed(paths):
        try:
            payload = read_checkpoint(path)
        except RunDirError as err:
            problems.append(str(err))
            path.replace(path.with_name(path.name + ".damaged"))
            _digest_path(path).unlink(missing_ok=True)
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from the previous checkpoint {path.name}", stacklevel=2)
        return payload
    raise RunDirError(f"no intact checkpoint to resume from ({'; '.join(problems)}); start the run again with --overwrite")
