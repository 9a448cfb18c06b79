"""Write files so that a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from trainground.engine.manifest import note_written


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (no file is created in between).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    The temporary file lives in the same directory so ``os.replace`` is an atomic rename.
    On error the temporary file is removed and ``path`` is untouched. The file gets the
    mode an ordinary ``open`` would give it (0666 less the umask; ``mkstemp`` alone gives
    0600, unreadable to colleagues on a shared server). A path inside a run directory is
    listed in its manifest first (see ``manifest.py``).
    """
    target = Path(path)
    note_written(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    mode = 0o666 & ~_umask()
    tmp.chmod(mode)
    try:
        yield tmp
        # Again after the write: a writer that replaces the file it is given (safetensors'
        # save_file does) leaves its own 0600 behind.
        tmp.chmod(mode)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a binary temp file, then atomically move it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
