"""``sample_issues.csv``: one row per sample, one ``is_<type>_issue`` / ``<type>_score`` pair
per sample check, labels in the user's own values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from trainground.diagnosis.findings import CheckResult

# Registered check name -> issue type in the column names (cleanlab's Datalab naming).
ISSUE_TYPES = {"label_issues": "label", "outliers": "outlier", "near_duplicates": "near_duplicate", "ambiguous": "ambiguous"}
BASE_COLUMNS = ("index", "given_label", "predicted_label", "suggested_label")


def sample_issues_table(results: Sequence[CheckResult], data, predicted: np.ndarray | None = None) -> pd.DataFrame:
    """Merge the per-sample results of sample checks into one table, in ``data``'s row order.

    Args:
        results: check results; those without ``samples`` are ignored.
        data: the ``IndexedDataset`` the checks looked at (labels, index, encoder).
        predicted: ``[N]`` class ids the trained model predicts (same row order), or None.

    Returns:
        Columns ``index, given_label, predicted_label, suggested_label`` then
        ``is_<type>_issue, <type>_score`` for each check, labels decoded to original values;
        for image data a ``source`` column (the file, relative to the folder) after ``index``.
    """
    index, labels = data.index.numpy(), data.labels.numpy()
    decode = data.encoder.decode
    table = pd.DataFrame({"index": index, "given_label": decode(labels)})
    if getattr(data, "sources", None) is not None:
        table.insert(1, "source", list(data.sources))
    table["predicted_label"] = decode(predicted) if predicted is not None else None
    suggested = labels
    order = list(ISSUE_TYPES)  # the documented column order first, other sample checks after
    results = sorted(results, key=lambda r: order.index(r.check) if r.check in order else len(order))
    for result in results:
        if result.samples is None:
            continue
        issue = ISSUE_TYPES.get(result.check, result.check)
        frame = result.samples.set_index("index")
        table[f"is_{issue}_issue"] = frame["flag"].reindex(index).fillna(False).astype(bool).to_numpy()
        table[f"{issue}_score"] = frame["score"].reindex(index).fillna(1.0).astype(float).to_numpy()
        if "suggested_label" in frame:
            suggested = frame["suggested_label"].reindex(index).fillna(pd.Series(labels, index=index)).astype(int).to_numpy()
    table.insert(list(table.columns).index("predicted_label") + 1, "suggested_label", decode(suggested))
    return table


def with_unlabelled(table: pd.DataFrame, data, predicted: np.ndarray) -> pd.DataFrame:
    """``table`` plus one row per input row without a label (``data.unlabelled_index``).

    Those rows were not trained on; their ``predicted_label`` (and ``suggested_label``) is
    the model's prediction, ``given_label`` is empty, no issue is flagged and scores are empty.

    Args:
        table: the :func:`sample_issues_table` of ``data``.
        data: the ``IndexedDataset`` with ``unlabelled_index``.
        predicted: ``[M]`` predicted class ids of the unlabelled rows.
    """
    index = getattr(data, "unlabelled_index", None)
    if index is None or len(index) == 0:
        return table
    labels = data.encoder.decode(predicted)
    extra = pd.DataFrame({"index": index.numpy(), "predicted_label": labels, "suggested_label": labels})
    for column in table.columns:
        if column.startswith("is_") and column.endswith("_issue"):
            extra[column] = False
    merged = pd.concat([table, extra[[c for c in extra.columns if c in table.columns]]], ignore_index=True)
    return merged.sort_values("index", kind="stable").reset_index(drop=True)[list(table.columns)]


def top_sample_issues(table: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """Flagged rows, worst first: by number of issues, then by lowest score among them."""
    flags = [c for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
    if not flags:
        return table.head(0)
    scores = [c.removeprefix("is_").removesuffix("_issue") + "_score" for c in flags]
    flagged = table[flags].to_numpy()
    worst = np.where(flagged, table[scores].to_numpy(), 1.0).min(axis=1)
    order = np.lexsort((worst, -flagged.sum(axis=1)))
    keep = order[flagged[order].any(axis=1)]
    return table.iloc[keep[:limit]]
