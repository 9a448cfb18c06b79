"""``actions.jsonl``: what the Guard did (skip, rollback, accumulation change), when and why."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainground.jsonsafe import json_safe


def action_record(step: int, action: str, reason: str, evidence: dict[str, Any]) -> dict[str, Any]:
    """One line of ``actions.jsonl``: ``{"step", "action", "reason", "evidence"}``."""
    return {"step": int(step), "action": action, "reason": reason, "evidence": json_safe(evidence)}


class ActionLog:
    """Appends records to ``actions.jsonl``, one ``write`` per record on an ``O_APPEND`` file,
    fsynced, so a crash leaves whole lines only (a torn last line is cut on the next open).

    Args:
        path: the file; created on the first record.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        """Cut records written after a checkpoint (a resumed run writes them again)."""
        if self.path.exists() and self.path.stat().st_size > size:
            with open(self.path, "r+b") as fh:
                fh.truncate(size)


def read_actions(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of an ``actions.jsonl``."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                out.append(json.loads(line))
    return out
