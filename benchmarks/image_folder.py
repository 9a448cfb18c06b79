"""Benchmark G: a small image folder with misfiled images, trainground vs cleanlab.

Folders are made from scikit-learn's bundled digits (no download): for each seed, 40
images per class (400), upscaled from 8x8 to 32x32 grey PNGs in one sub-folder per class,
then 20 of them moved to a wrong class folder (seeded). Methods, side by side:

  trainground (fixed)  ``diagnose FOLDER`` with lr 1e-3 and 20 epochs (the library default,
                       and the CLI default before this benchmark's rule).
  trainground (auto)   ``diagnose FOLDER`` with the image schedule: lr from a learning-rate
                       range test, at least 1000 optimizer steps (engine/schedule.py), without
                       the linear view (the CLI default before issue 14's third session).
  trainground (auto + linear view)  as the CLI runs it now: the image schedule, and a 5-fold
                       logistic regression's out-of-sample probabilities averaged into the
                       early-learning ones (diagnosis/linear_view.py, folders <= 2000 images).
  cleanlab             raw pixels (0-1) into scikit-learn's LogisticRegression, out-of-sample
                       ``pred_probs`` from 5-fold ``cross_val_predict``, ``find_label_issues``.

Metrics: precision / recall / F1 of the flagged files against the moved ones; trainground's
best validation accuracy. Threads: 1.

Usage: python benchmarks/image_folder.py [--seeds 0 1 2] [--per-class 40] [--no-fixed] [--out benchmarks/results/image_folder.json]
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
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from trainground.data import load_data
from trainground.diagnosis.dataset import DatasetDiagnosisConfig, diagnose_dataset
from trainground.engine import FitConfig

PER_CLASS, MOVED, SIDE = 40, 20, 32


def make_folder(root: Path, seed: int) -> set[str]:
    """Write the folder; return the moved files' paths relative to ``root``."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.choice(np.flatnonzero(digits.target == c), PER_CLASS, replace=False) for c in range(10)])
    moved_at = set(rng.choice(len(picks), MOVED, replace=False).tolist())
    moved = set()
    for k, i in enumerate(picks):
        label = int(digits.target[i])
        if k in moved_at:
            label = int(rng.choice([c for c in range(10) if c != label]))
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        name = f"img{i:04d}.png"
        Image.fromarray(pixels).resize((SIDE, SIDE), Image.BILINEAR).save(folder / name)
        if k in moved_at:
            moved.add(f"{label}/{name}")
    return moved


def prf(flag: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flag & truth).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "flagged": int(flag.sum())}


def run_trainground(root: Path, moved: set[str], auto: bool, linear_view: bool | None = False) -> dict:
    started = time.perf_counter()
    config = FitConfig(threads=1, auto_schedule="images" if auto else "never")
    result = diagnose_dataset(load_data(str(root)), DatasetDiagnosisConfig(fit=config, linear_view=linear_view))
    table = result.table
    truth = table["source"].isin(moved).to_numpy()
    val = max(r.get("val_accuracy", 0.0) for r in result.fit.history)
    return {**prf(table["is_label_issue"].to_numpy(bool), truth), "val_accuracy": round(val, 4),
            "epochs": len(result.fit.history), "seconds": round(time.perf_counter() - started, 1)}


def run_cleanlab(root: Path, moved: set[str], seed: int) -> dict:
    started = time.perf_counter()
    files = sorted(p for p in root.glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(p), dtype=np.float32).reshape(-1) / 255 for p in files])
    y = np.array([int(p.parent.name) for p in files])
    truth = np.array([f"{p.parent.name}/{p.name}" in moved for p in files])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=folds, method="predict_proba")
    flags = np.asarray(find_label_issues(labels=y, pred_probs=probs), dtype=bool)
    accuracy = float((probs.argmax(1) == y).mean())
    return {**prf(flags, truth), "cv_accuracy": round(accuracy, 4), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    global PER_CLASS, MOVED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=PER_CLASS, help="images per class (moved: 5 %%)")
    parser.add_argument("--no-fixed", action="store_true", help="skip the old fixed recipe")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "image_folder.json")
    args = parser.parse_args()
    PER_CLASS, MOVED = args.per_class, args.per_class * 10 // 20  # 5 % moved
    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # scikit-learn's BLAS too: oversubscribed pools crawl on a busy machine
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "digits"
            moved = make_folder(root, seed)
            methods = [("trainground (fixed lr 1e-3, 20 epochs)", lambda: run_trainground(root, moved, False)),
                       ("trainground (auto schedule)", lambda: run_trainground(root, moved, True)),
                       ("trainground (auto + linear view, CLI default)", lambda: run_trainground(root, moved, True, None)),
                       ("cleanlab + logistic regression", lambda: run_cleanlab(root, moved, seed))]
            for method, run in methods[1:] if args.no_fixed else methods:
                row = {"seed": seed, "method": method, **run()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("method", sort=False)[["precision", "recall", "f1"]].mean().round(3).reset_index()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": PER_CLASS * 10, "moved": MOVED, "seeds": args.seeds, "runs": rows,
                                    "mean": summary.to_dict(orient="records")}, indent=1) + "\n")
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
