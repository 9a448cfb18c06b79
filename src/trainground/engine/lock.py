"""One writer per run directory: an advisory ``flock`` on ``.trainground.lock``.

The kernel drops the lock when the process ends, however it ends (``kill -9`` included),
so a crashed run never blocks its own ``--resume``. Within one process the lock is
re-entrant (the same run directory may be opened twice) and released once no
:class:`RunLock` for it is alive.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from trainground.errors import RunDirError

try:  # POSIX; elsewhere runs are not locked (documented)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# resolved lock path -> [fd, holders]
_HELD: dict[str, list[int]] = {}


def _release(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        os.close(held[0])


class RunLock:
    """Hold the lock file ``path`` for as long as this object lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        key = str(path.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise RunDirError(
                        f"{path.parent}: another trainground process is writing this run directory; "
                        "wait for it to finish or choose another --out"
                    ) from None
            _HELD[key] = [fd, 1]
        self._finalizer = weakref.finalize(self, _release, key)

    def release(self) -> None:
        self._finalizer()


def is_locked_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock file ``path`` right now."""
    if fcntl is None or not path.is_file() or str(path.resolve()) in _HELD:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return False
