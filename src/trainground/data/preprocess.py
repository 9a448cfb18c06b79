"""scikit-learn preprocessing of table features, restorable from plain JSON parameters.

One ``ColumnTransformer`` turns the feature columns into the float32 matrix:

- numeric columns: ``SimpleImputer(strategy="median")`` fills a missing cell with the
  column's median over the rows it was fitted on (the training split);
- ``MissingIndicator``: one 0/1 column per numeric column that had missing values, so the
  model can tell an imputed value from a measured one (missingness is often informative);
- categorical columns: missing cells become their own category ``(missing)``, then
  ``OneHotEncoder`` with the known categories (an unseen value is an all-zero vector).

Output columns in that order: numeric, indicators, one-hot blocks. The fitted parameters
(medians, indicator columns, categories) are plain JSON in the model file; the transformer
is rebuilt from them by fitting it on a one-row reference frame (the median of one value
is that value), so prediction applies exactly the transform training applied without
pickling any object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

# The category a missing cell of a text column becomes.
MISSING_CATEGORY = "(missing)"


def fit_medians(numbers: pd.DataFrame) -> dict[str, float]:
    """Median of each column over its present values (``SimpleImputer``'s statistics)."""
    if numbers.shape[1] == 0:
        return {}
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(numbers.to_numpy(np.float64))
    # keep_empty_features fills a column without any value here with 0.
    return {c: float(v) for c, v in zip(numbers.columns, imputer.statistics_, strict=True)}


def fit_categories(texts: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Sorted categories of each text column, ``(missing)`` among them where a cell is missing."""
    if texts.shape[1] == 0:
        return {}
    filled = texts.fillna(MISSING_CATEGORY)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(filled)
    return {c: tuple(str(v) for v in cats) for c, cats in zip(texts.columns, encoder.categories_, strict=True)}


def build_transformer(
    numeric: Sequence[str], medians: Mapping[str, float], indicators: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> ColumnTransformer:
    """The fitted ``ColumnTransformer`` with these parameters (see the module docstring)."""
    parts: list[tuple] = []
    if numeric:
        parts.append(("numeric", SimpleImputer(strategy="median", keep_empty_features=True), list(numeric)))
    if indicators:
        parts.append(("missing", MissingIndicator(features="all"), list(indicators)))
    if categories:
        encoder = OneHotEncoder(
            categories=[list(v) for v in categories.values()], handle_unknown="ignore", sparse_output=False,
            dtype=np.float32,
        )
        imputer = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, missing_values=np.nan)
        parts.append(("categorical", make_pipeline(imputer, encoder), list(categories)))
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    reference = {c: [float(medians[c])] for c in numeric}
    reference.update({c: [list(v)[0] if len(v) else MISSING_CATEGORY] for c, v in categories.items()})
    if parts:
        transformer.fit(pd.DataFrame(reference).astype({c: object for c in categories}))
    return transformer


def transform(transformer: ColumnTransformer, clean: pd.DataFrame) -> np.ndarray:
    """``[N, F]`` float32 features of ``clean`` (numbers as float64, text as object with NaN)."""
    if not transformer.transformers:
        return np.zeros((len(clean), 0), dtype=np.float32)
    return np.require(transformer.transform(clean), dtype=np.float32, requirements=["C", "W", "O"])
