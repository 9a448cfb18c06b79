"""Reading a CSV or Parquet file into a frame, with one clear error naming the file, the line
or the byte when it cannot be read (the table's columns are chosen in :mod:`trainground.data.table`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from trainground.data.columns import CSV_SUFFIXES
from trainground.data.parquet_parts import read_parquet_frame
from trainground.data.validate import check_header
from trainground.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` (UTF-8, with a header line) or ``.parquet``/``.pq`` file.

    Raises:
        DataError: missing, empty, malformed or unreadable file, or a file without rows.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        supported = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        shown = suffix or "(no suffix)"
        raise DataError(f"{path}: unsupported file type {shown!r}; supported: {supported}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    is_csv = suffix in CSV_SUFFIXES
    check_header(path, is_csv=is_csv)
    frame = _read_csv(path) if is_csv else _read_parquet(path)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows" + (" (only a header line)" if is_csv else ""))
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # blank lines are kept (as empty rows) so that data row i stays on line i + 2
        frame = pd.read_csv(path, encoding="utf-8", skip_blank_lines=False)
        filled = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
        end = int(filled[-1]) + 1 if len(filled) else 0
        if end < len(frame):
            # blank lines at the end are an editor artefact, not rows; reading again
            # without them keeps integer columns integer (an empty row makes them float)
            frame = pd.read_csv(path, encoding="utf-8", skip_blank_lines=False, nrows=end)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header line)") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV: {_parser_message(err)}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV ({_first_bad_byte(path)})") from None
    return frame


def _parser_message(err: Exception) -> str:
    text = str(err).strip()
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        want, line, saw = fields.groups()
        return f"line {line} has {saw} fields, the header has {want}"
    quote = re.search(r"EOF inside string starting at row (\d+)", text)
    if quote:  # pandas counts rows from 0 with the header as row 0
        return f"a quoted field opened on line {int(quote.group(1)) + 1} is never closed"
    return text.removeprefix("Error tokenizing data. C error: ")


def _first_bad_byte(path: Path) -> str:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:  # pandas reports offsets within its read buffer
        line = raw[: err.start].count(b"\n") + 1
        return f"byte 0x{raw[err.start]:02x} on line {line} is not UTF-8; re-save the file as UTF-8"
    return "re-save the file as UTF-8"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return read_parquet_frame(path)  # memory-mapped; Arrow frees each column as pandas takes it
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read as Parquet: {err}") from None
