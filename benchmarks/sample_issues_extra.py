"""Sample issues beyond protocol A, each with known truth.

1. Unseen CSVs: scikit-learn's wine (178 x 13, 3 classes) and breast_cancer (569 x 30,
   2 classes) written to CSV with string labels and 20 % symmetric label noise
   (``inject_label_noise``), diagnosed through the public path ``diagnose(csv, target=...)``
   (the real CSV loader, default FitConfig: 20 epochs at most, early stop, 10 % validation).
2. Near duplicates: digits plus 30 exact copies and 30 near copies (Gaussian jitter of
   1 % of each feature's std) of random rows, 10 of the copies relabelled to another
   class. Truth = the copies and their sources; conflicts = the relabelled copies and sources.
3. Outliers: digits plus 30 rows of uniform noise over each feature's observed range
   (out-of-distribution "images"). Truth = those rows.

Reports precision / recall / F1 of the flags (and AUROC of the label score for 1), mean
over seeds 0, 1, 2 (noise / injection seed = fit seed).

Usage: python benchmarks/sample_issues_extra.py [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import roc_auc_score

from trainground.data import IndexedDataset, LabelEncoder, inject_label_noise
from trainground.engine import FitConfig
from trainground.recipes.diagnose import diagnose, diagnose_dataset


def prf(flag: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((flag & truth).sum())
    p, r = tp / max(int(flag.sum()), 1), tp / max(int(truth.sum()), 1)
    return p, r, 0.0 if p + r == 0 else 2 * p * r / (p + r)


def unseen_csv(name: str, seed: int, threads: int, tmp: Path) -> dict:
    loader = {"wine": load_wine, "breast_cancer": load_breast_cancer}[name]
    d = loader(as_frame=True)
    frame = d.frame.drop(columns=["target"]).copy()
    names = np.asarray([f"class_{c}" for c in d.target_names])
    y = d.target.to_numpy()
    noisy = inject_label_noise(y, kind="symmetric", rate=0.2, seed=seed, num_classes=len(names))
    frame["label"] = names[noisy.labels]
    path = tmp / f"{name}-{seed}.csv"
    frame.to_csv(path, index=False)
    t0 = time.perf_counter()
    result = diagnose(path, target="label", fit_config=FitConfig(seed=seed, device="cpu", threads=threads))
    table = result.table.sort_values("index")
    truth = noisy.is_corrupted[table["index"].to_numpy()]
    p, r, f = prf(table["is_label_issue"].to_numpy(), truth)
    return {"precision": p, "recall": r, "f1": f, "auroc": roc_auc_score(truth, 1 - table["label_score"]),
            "wall_s": time.perf_counter() - t0}


def digits_dataset(x: np.ndarray, y: np.ndarray) -> IndexedDataset:
    return IndexedDataset(
        features=torch.tensor(x, dtype=torch.float32), labels=torch.tensor(y, dtype=torch.long),
        index=torch.arange(len(y)), encoder=LabelEncoder(tuple(range(10))), kind="table", name="digits+injected",
    )


def duplicates(seed: int, threads: int) -> dict:
    d = load_digits()
    x, y = d.data.astype(np.float64), d.target.copy()
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(y), 60, replace=False)
    copies = x[sources].copy()
    copies[30:] += rng.normal(size=copies[30:].shape) * 0.01 * x.std(axis=0)
    labels = y[sources].copy()
    relabel = rng.choice(60, 10, replace=False)
    labels[relabel] = (labels[relabel] + rng.integers(1, 10, 10)) % 10
    n = len(y)
    data = digits_dataset(np.vstack([x, copies]), np.concatenate([y, labels]))
    result = diagnose_dataset(data, fit_config=FitConfig(epochs=40, seed=seed, device="cpu", threads=threads))
    table = result.table.sort_values("index")
    truth = np.zeros(n + 60, dtype=bool)
    truth[sources] = True
    truth[n:] = True
    p, r, f = prf(table["is_near_duplicate_issue"].to_numpy(), truth)
    near = np.zeros(n + 60, dtype=bool)
    near[sources[30:]] = near[n + 30 :] = True
    return {"precision": p, "recall": r, "f1": f,
            "recall_near_only": float(table["is_near_duplicate_issue"].to_numpy()[near].mean())}


def outliers(seed: int, threads: int) -> dict:
    d = load_digits()
    x, y = d.data.astype(np.float64), d.target.copy()
    rng = np.random.default_rng(seed)
    lo, hi = x.min(axis=0), x.max(axis=0)
    noise = lo + rng.random((30, x.shape[1])) * (hi - lo)
    data = digits_dataset(np.vstack([x, noise]), np.concatenate([y, rng.integers(0, 10, 30)]))
    result = diagnose_dataset(data, fit_config=FitConfig(epochs=40, seed=seed, device="cpu", threads=threads))
    table = result.table.sort_values("index")
    truth = np.zeros(len(y) + 30, dtype=bool)
    truth[len(y) :] = True
    p, r, f = prf(table["is_outlier_issue"].to_numpy(), truth)
    return {"precision": p, "recall": r, "f1": f, "auroc": roc_auc_score(truth, 1 - table["outlier_score"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in ("wine", "breast_cancer"):
                rows.setdefault(f"label issues, unseen CSV {name} (sym20)", []).append(
                    unseen_csv(name, seed, args.threads, Path(tmp)))
            rows.setdefault("near duplicates, digits + 60 injected copies", []).append(duplicates(seed, args.threads))
            rows.setdefault("outliers, digits + 30 uniform-noise rows", []).append(outliers(seed, args.threads))
            print(f"seed {seed} done", flush=True)
    print("| task | precision | recall | F1 | other |\n|---|---|---|---|---|")
    for task, rs in rows.items():
        frame = pd.DataFrame(rs)
        extra = ", ".join(f"{c} {frame[c].mean():.3f}" for c in frame.columns if c not in ("precision", "recall", "f1"))
        print(f"| {task} | {frame['precision'].mean():.3f} | {frame['recall'].mean():.3f} | {frame['f1'].mean():.3f} | {extra} |")


if __name__ == "__main__":
    main()
