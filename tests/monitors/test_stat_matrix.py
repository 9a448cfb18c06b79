"""stat_matrix: the numpy pivot agrees with pandas' pivot_table on a long layers table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.monitors.table import stat_matrix


def test_stat_matrix_agrees_with_pivot_table() -> None:
    rng = np.random.default_rng(0)
    n = 400
    table = pd.DataFrame({
        "step": rng.integers(0, 30, n) * 10,
        "layer": pd.Categorical(rng.choice(["head", "fc1", "fc0", "unused"][:3], n), categories=["fc0", "fc1", "head", "unused"]),
        "stat": rng.choice(["norm", "mean"], n),
        "value": rng.normal(size=n),
    })
    table = table[~((table["layer"] == "head") & (table["step"] == 50))]  # a missing cell
    got = stat_matrix(table, "norm")
    rows = table[table["stat"] == "norm"]
    order = list(dict.fromkeys(rows["layer"]))
    expected = rows.pivot_table(index="step", columns="layer", values="value", aggfunc="last", dropna=False,
                                observed=True)
    expected = expected[[c for c in order if c in expected.columns]]
    assert list(got.columns) == [str(c) for c in expected.columns] and list(got.index) == list(expected.index)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert np.isnan(got.loc[50, "head"])
    assert stat_matrix(table, "absent").empty
