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
    """The table with no rows (one shared instance: building it costs milliseconds; do not mutate it)."""
    global _EMPTY
    if _EMPTY is None:
        _EMPTY = pd.DataFrame({
            "step": pd.Series(dtype="int64"), "epoch": pd.Series(dtype="int64"), "layer": pd.Series(dtype="object"),
            "stat": pd.Series(dtype="object"), "value": pd.Series(dtype="float64"),
        })
    return _EMPTY


_EMPTY: pd.DataFrame | None = None


def long_table(
    steps: Sequence[int], epochs: Sequence[int], layers: Sequence[str], stats: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """Rows for every (moment, layer, stat); ``stats[name]`` has shape ``[moments, layers]``.

    Built as one DataFrame with categorical ``layer``/``stat`` columns: a DataFrame per
    statistic (or Python strings per row) costs milliseconds per call, which a monitor
    computed every few steps cannot afford.
    """
    n_moments, n_layers = len(steps), len(layers)
    if n_moments == 0 or n_layers == 0 or not stats:
        return empty_table()
    names = list(stats)
    n_stats, cell = len(names), n_moments * n_layers
    values = np.concatenate([np.asarray(stats[k], dtype=np.float64).reshape(-1) for k in names])
    return pd.DataFrame({
        "step": np.tile(np.repeat(np.asarray(steps, dtype=np.int64), n_layers), n_stats),
        "epoch": np.tile(np.repeat(np.asarray(epochs, dtype=np.int64), n_layers), n_stats),
        "layer": pd.Categorical.from_codes(np.tile(np.arange(n_layers), n_moments * n_stats),
                                           dtype=_categories(tuple(layers))),
        "stat": pd.Categorical.from_codes(np.repeat(np.arange(n_stats), cell), dtype=_categories(tuple(names))),
        "value": values,
    })


_DTYPES: dict[tuple[str, ...], pd.CategoricalDtype] = {}


def _categories(names: tuple[str, ...]) -> pd.CategoricalDtype:
    """The categorical dtype of ``names``, made once: validating the categories costs more than
    the rest of a small table (a monitor's window makes a few per epoch, with the same names)."""
    dtype = _DTYPES.get(names)
    if dtype is None:
        if len(_DTYPES) > 256:  # bounded: names come from models and statistics, a handful per run
            _DTYPES.clear()
        dtype = _DTYPES[names] = pd.CategoricalDtype(list(names))
    return dtype


def stat_matrix(table: pd.DataFrame, stat: str) -> pd.DataFrame:
    """One statistic as a ``step x layer`` frame (layers in first-seen order)."""
    rows = table[table["stat"] == stat]
    if rows.empty:
        return pd.DataFrame()
    # A numpy scatter instead of pivot_table (10x faster; the training checks ask for ~40
    # matrices): codes in first-seen order for layers, sorted steps, the last value of a
    # repeated (step, layer) kept, missing cells NaN.
    steps, step_code = np.unique(rows["step"].to_numpy(), return_inverse=True)
    layer_code, layers = pd.factorize(rows["layer"].astype(object), sort=False)
    flat = step_code * len(layers) + layer_code
    last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]
    values = np.full(len(steps) * len(layers), np.nan)
    values[flat[last]] = rows["value"].to_numpy(dtype=np.float64)[last]
    return pd.DataFrame(values.reshape(len(steps), len(layers)), index=pd.Index(steps, name="step"),
                        columns=pd.Index(list(layers), name="layer"))
