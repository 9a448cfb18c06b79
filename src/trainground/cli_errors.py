"""The command line's one error funnel: what a failure looks like to the user.

Every command of ``cli.py`` runs inside :func:`user_errors`: an expected failure (bad input,
an ``OSError``, undecodable data) is one ``error:`` line and exit status 2, a bug of ours one
line naming a crash log with the traceback and exit status 1; warnings and the library's
notices are one line each. Kept apart from the commands so ``cli.py`` stays a list of thin
wrappers.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from trainground.errors import DataError, RunDirError, TraingroundError

err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Exit status for errors in the user's input (files, columns, options): one message, no traceback.
EXIT_BAD_INPUT = 2
# Exit status for a bug of ours: one line naming the log file with the traceback.
EXIT_INTERNAL = 1


class _Notices(logging.Handler):
    """The library's notices (logger ``trainground``, e.g. columns left out) as one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err_console.print(f"[yellow]note:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def _show_notices() -> None:
    root = logging.getLogger("trainground")
    if not any(isinstance(h, _Notices) for h in root.handlers):
        root.addHandler(_Notices(logging.WARNING))
        root.propagate = False


def user_errors(command: F) -> F:
    """The CLI's one error funnel: every command runs inside it.

    Expected failures (a :class:`TraingroundError`, an ``OSError`` such as an unreadable
    file or a read-only folder, undecodable input) become one line on stderr and exit
    status 2. Anything else is a bug of ours: one line naming a log file that holds the
    traceback, exit status 1. Warnings print as one ``warning:`` line each.
    """
    resumable = "resume" in inspect.signature(command).parameters

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _show_notices()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return command(*args, **kwargs)
            except typer.Exit:
                raise
            except KeyboardInterrupt:
                hint = "; a run with checkpoints continues with --resume" if resumable else ""
                err_console.print(f"interrupted{hint}")
                raise typer.Exit(130) from None
            except Exception as err:  # noqa: BLE001 - the funnel: nothing leaves as a traceback
                message = expected_failure(err)
                if message is None:
                    log = _write_crash_log()
                    message = (f"internal error ({type(err).__name__}: {_first_line(err)}); this is a bug in "
                               f"trainground, please report it with the traceback in {log}")
                    code = EXIT_INTERNAL
                else:
                    code = EXIT_BAD_INPUT
                # escape: a message may hold brackets ("pip install 'trainground[mlflow]'") that are not markup
                err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
                raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else "")[:300]


def expected_failure(err: BaseException) -> str | None:
    """The one-line message of a failure the user can fix, or None for a bug of ours."""
    if isinstance(err, TraingroundError):
        return str(err)
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else "a file"
        return f"{where}: {err.strerror or _first_line(err) or type(err).__name__}"
    if isinstance(err, UnicodeDecodeError):
        return f"an input is not UTF-8 text ({_first_line(err)})"
    import yaml

    if isinstance(err, (yaml.YAMLError, json.JSONDecodeError)):
        return f"an input file is not valid {'YAML' if isinstance(err, yaml.YAMLError) else 'JSON'} ({_first_line(err)})"
    return None


def _write_crash_log() -> Path:
    """The traceback of the exception being handled, in a file of its own; its path."""
    fd, name = tempfile.mkstemp(prefix=f"trainground-crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"trainground {' '.join(sys.argv[1:])}\n\n")
        fh.write(traceback.format_exc())
    return Path(name)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def inputs_exist(*paths: str | Path | None, run_dir: Path | None = None) -> None:
    """Refuse a missing input before the command imports torch, pandas or scikit-learn, so a typo
    is answered in a fraction of a second; the loaders say the same for anything subtler."""
    for path in paths:
        if path is not None and not str(path).startswith("builtin:") and not Path(path).exists():
            raise DataError(f"{path}: no such file or folder")
    if run_dir is not None and not Path(run_dir).is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
