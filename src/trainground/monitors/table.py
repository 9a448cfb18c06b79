"""The long table every layer monitor returns: ``step, epoch, layer, stat, value``.

One row per (moment, layer, statistic) keeps ``layers.parquet`` open to new statistics
without a schema change; a check pivots the few statistics it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

COLUMNS = ("step", "epoch", "layer", "stat", "value")


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({
        "step": pd.Series(dtype="int64"), "epoch": pd.Series(dtype="int64"), "layer": pd.Series(dtype="object"),
        "stat": pd.Series(dtype="object"), "value": pd.Series(dtype="float64"),
    })


def long_table(
    steps: Sequence[int], epochs: Sequence[int], layers: Sequence[str], stats: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """Rows for every (moment, layer, stat); ``stats[name]`` has shape ``[moments, layers]``."""
    n_moments, n_layers = len(steps), len(layers)
    if n_moments == 0 or n_layers == 0 or not stats:
        return empty_table()
    frames = []
    for stat, values in stats.items():
        values = np.asarray(values, dtype=np.float64).reshape(n_moments, n_layers)
        frames.append(pd.DataFrame({
            "step": np.repeat(np.asarray(steps, dtype=np.int64), n_layers),
            "epoch": np.repeat(np.asarray(epochs, dtype=np.int64), n_layers),
            "layer": np.tile(np.asarray(layers, dtype=object), n_moments),
            "stat": stat,
            "value": values.reshape(-1),
        }))
    return pd.concat(frames, ignore_index=True)


def stat_matrix(table: pd.DataFrame, stat: str) -> pd.DataFrame:
    """One statistic as a ``step x layer`` frame (layers in first-seen order)."""
    rows = table[table["stat"] == stat]
    if rows.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(rows["layer"]))
    wide = rows.pivot_table(index="step", columns="layer", values="value", aggfunc="last", dropna=False)
    return wide[[c for c in order if c in wide.columns]]
