"""``layers.parquet``: per-layer statistics over time, written in chunks at checkpoints.

It is a folder of Parquet parts (``part-00000.parquet``, ...), one per flush, each written
atomically, so a run of any length appends without rewriting what is on disk, and a
resumed run drops the parts written after its checkpoint. ``pandas.read_parquet`` reads
the folder as one table; :func:`read_layers` does so in part order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainground.engine.atomic import atomic_path
from trainground.engine.manifest import make_dirs
from trainground.monitors.table import empty_table


def _parts(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.parquet")) if path.is_dir() else []


def write_layers_part(path: str | Path, table: pd.DataFrame, part: int) -> None:
    """Write ``table`` as part number ``part`` of the layers folder ``path`` (atomic)."""
    folder = make_dirs(path)  # listed in the run's manifest before it exists
    with atomic_path(folder / f"part-{part:05d}.parquet") as tmp:
        table.to_parquet(tmp, index=False)


def truncate_layers(path: str | Path, parts: int) -> None:
    """Delete the parts numbered ``parts`` and above (written after the checkpoint resumed from)."""
    for p in _parts(Path(path)):
        if int(p.stem.split("-")[1]) >= parts:
            p.unlink()


def read_layers(path: str | Path) -> pd.DataFrame:
    """The whole table (a single Parquet file is read as well)."""
    path = Path(path)
    if path.is_file():
        return pd.read_parquet(path)
    parts = _parts(path)
    if not parts:
        return empty_table()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
