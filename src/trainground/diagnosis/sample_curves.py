"""Per-sample summaries of learning curves (``samples.parquet``): AUM, forgetting events,
cartography confidence and variability."""

from __future__ import annotations

import numpy as np
import pandas as pd


def learning_curve_summary(records: pd.DataFrame, *, last_epoch: int | None = None) -> pd.DataFrame:
    """One row per sample index, from the per-epoch records of the training split.

    Columns: ``aum`` (mean margin over the epochs up to ``last_epoch``, all when None),
    ``confidence`` and ``variability`` (mean and standard deviation of the given-label
    probability over the same epochs), ``forgetting_events`` (times, over the whole run,
    that the sample went from predicted right to predicted wrong).

    References:
        Pleiss et al., "Identifying Mislabeled Data using the Area Under the Margin
        Ranking", NeurIPS 2020; Swayamdipta et al., "Dataset Cartography", EMNLP 2020;
        Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural
        Network Learning", ICLR 2019.
    """
    train = records[records["split"] == 0] if "split" in records else records
    window = train if last_epoch is None else train[train["epoch"] <= last_epoch]
    grouped = window.groupby("index")
    out = pd.DataFrame({
        "aum": grouped["margin"].mean(),
        "confidence": grouped["prob_given"].mean(),
        "variability": grouped["prob_given"].std(ddof=0),
    })
    ordered = train.sort_values(["index", "epoch"], kind="stable")
    correct = (ordered["margin"].to_numpy() > 0).astype(np.int8)
    same = ordered["index"].to_numpy()
    forgot = np.zeros(len(ordered), dtype=np.int64)
    if len(ordered) > 1:
        forgot[1:] = (same[1:] == same[:-1]) & (correct[:-1] == 1) & (correct[1:] == 0)
    out["forgetting_events"] = pd.Series(forgot, index=same).groupby(level=0).sum()
    return out
