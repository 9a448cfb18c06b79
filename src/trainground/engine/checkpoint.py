"""Resumable checkpoints: model, optimizer, RNG, loop counters and callback state."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from trainground.engine.atomic import atomic_write
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


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], *, keep: int) -> Path:
    """Atomically write ``payload`` as the checkpoint of ``step``; keep the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    atomic_write(path, lambda fh: torch.save({"format": CHECKPOINT_FORMAT, **payload}, fh))
    for old in list_checkpoints(directory)[: -max(keep, 1)]:
        old.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint in ``directory``, or None if there is none."""
    paths = list_checkpoints(directory)
    if not paths:
        return None
    path = paths[-1]
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a file this code did not write, or a damaged disk
        raise RunDirError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path}: checkpoint format {payload.get('format')!r} is not {CHECKPOINT_FORMAT}")
    return payload
