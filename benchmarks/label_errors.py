"""Benchmark A: finding corrupted labels, trainground (one training) vs cleanlab (5-fold CV).

Protocol A of ``../shared/anchors/`` (README there): digits and mnist1d, 80/20 stratified
split (seed 0), standardised, sym20 / sym40 / asym30 noise on the train split with noise
seeds 0, 1, 2; the anchors' own ``load_dataset`` and ``inject_noise`` are imported by path,
so both methods see the same noisy labels. For every (data, noise, seed):

  cleanlab    the anchors' code path: out-of-sample pred_probs from 5-fold StratifiedKFold
              (5 trainings of the MLP recipe), ``find_label_issues`` (default filter
              prune_by_noise_rate); score = 1 - ``get_label_quality_scores``.
  trainground ``diagnose_dataset``: ONE training of the same recipe (MLP 256-256, Adam 1e-3,
              batch 64, 40 epochs) on 90 % of the samples with a 10 % validation split,
              recording every sample; all checks run (label issues, outliers, near
              duplicates, ambiguous, class imbalance, groups); training stops 5 epochs
              after the best validation loss (--full-training: all 40 epochs), then a
              second early-stopped pass trains on the samples the first one trusts;
              flagged = is_label_issue;
              score = 1 - label_score. Every train-split sample is scored.

--model cnn1d replaces the MLP by the built-in 1-D CNN (``ModelConfig(name="cnn1d")``) on BOTH
sides: trainground trains it, and the cleanlab anchor's 5 CV folds train the same architecture
with the anchors' loop (Adam 1e-3, batch 64, randperm batches seeded by the seed,
torch.manual_seed(seed) before building), so the comparison stays like for like; --epochs sets
the recipe's epochs for both (40 in the anchors' MLP recipe).

Metrics: precision / recall / F1 of the flagged set vs the truly corrupted indices, AUROC
of the score, P@k (k = number corrupted), trainings, wall seconds. Threads: 1 for both.

Usage: python benchmarks/label_errors.py [--datasets digits mnist1d] [--seeds 0 1 2]
       [--noise sym20 sym40 asym30] [--threads 1] [--out label_errors.json] [--skip-cleanlab]
       [--model mlp|cnn1d] [--epochs 40]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from trainground.data import IndexedDataset, LabelEncoder
from trainground.engine import FitConfig
from trainground.models import ModelConfig
from trainground.recipes.diagnose import diagnose_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import signal_models  # benchmarks/signal_models.py, shared with repair_accuracy.py

# ../shared/anchors from the project root (a checkout under /work/main or a worktree /work/wt/NAME).
_ROOT = Path(__file__).resolve().parents[1]
ANCHORS = next((p for p in (_ROOT.parent / "shared" / "anchors", _ROOT.parents[1] / "shared" / "anchors")
                if (p / "common.py").exists()), _ROOT.parent / "shared" / "anchors")


def load_anchor(name: str, anchors: Path):
    """Import ``anchors/<name>.py`` by path (the anchors are scripts, not a package)."""
    sys.path.insert(0, str(anchors))
    spec = importlib.util.spec_from_file_location(name, anchors / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def prf(flag: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flag & truth).sum())
    p, r = tp / max(int(flag.sum()), 1), tp / max(int(truth.sum()), 1)
    return {"precision": p, "recall": r, "f1": 0.0 if p + r == 0 else 2 * p * r / (p + r), "n_flagged": int(flag.sum())}


def ranking(score: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    k = int(truth.sum())
    top = np.argsort(-score, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(truth, score)), "precision_at_k": float(truth[top].mean())}


def trainground_run(x: np.ndarray, y_noisy: np.ndarray, truth: np.ndarray, seed: int, threads: int, full: bool,
                    model: str = "mlp", epochs: int = 40) -> dict:
    data = IndexedDataset(
        features=torch.from_numpy(x), labels=torch.from_numpy(y_noisy), index=torch.arange(len(y_noisy)),
        encoder=LabelEncoder(tuple(range(10))), kind="table", name="bench",
    )
    config = FitConfig(epochs=epochs, lr=1e-3, batch_size=64, seed=seed, val_fraction=0.1, device="cpu", threads=threads)
    model_config = ModelConfig() if model == "mlp" else ModelConfig(name=model)
    t0 = time.perf_counter()
    # Sample checks only (training_checks=None): the training diagnosis is not part of what is compared.
    result = diagnose_dataset(data, fit_config=config, model_config=model_config, training_checks=None,
                              **({"patience": None} if full else {}))
    wall = time.perf_counter() - t0
    table = result.table
    out = prf(table["is_label_issue"].to_numpy(), truth)
    out.update(ranking(1.0 - table["label_score"].to_numpy(), truth))
    # Trainings' worth of compute: sample presentations of both passes in units of the
    # anchor's training (40 epochs on all samples); the forward-only eval passes of the
    # held-out samples at each epoch end are left out.
    out.update(wall_s=wall, trainings=round(result.sample_presentations / (epochs * len(y_noisy)), 3), epochs=len(result.fit.history),
               early_learning_epoch=result.early_learning_epoch)
    return out


def cv_pred_probs(bench_a, x: np.ndarray, y_noisy: np.ndarray, seed: int, model: str, epochs: int) -> np.ndarray:
    """The anchors' 5-fold CV (same folds as ``bench_a.cv_pred_probs``) with ``model``."""
    if model == "mlp" and epochs == 40:
        return bench_a.cv_pred_probs(x, y_noisy, seed)
    return signal_models.cv_pred_probs(x, y_noisy, seed, model, epochs)


def cleanlab_run(bench_a, x: np.ndarray, y_noisy: np.ndarray, truth: np.ndarray, seed: int, model: str = "mlp",
                 epochs: int = 40) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    t0 = time.perf_counter()
    pp = cv_pred_probs(bench_a, x, y_noisy, seed, model, epochs)
    mask = find_label_issues(y_noisy, pp, n_jobs=1)
    quality = get_label_quality_scores(y_noisy, pp)
    wall = time.perf_counter() - t0
    out = prf(mask, truth)
    out.update(ranking(1.0 - quality, truth))
    out.update(wall_s=wall, trainings=bench_a.CV_FOLDS)
    return out


def summarize(rows: list[dict]) -> dict:
    keys = [k for k, v in rows[0].items() if isinstance(v, int | float) and v is not None]
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))} for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=["digits", "mnist1d"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--noise", nargs="*", default=["sym20", "sym40", "asym30"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--anchors", type=Path, default=ANCHORS)
    ap.add_argument("--skip-cleanlab", action="store_true", help="trainground only (development)")
    ap.add_argument("--full-training", action="store_true", help="train all 40 epochs (no early stop)")
    ap.add_argument("--model", choices=["mlp", "cnn1d"], default="mlp", help="the model of both methods")
    ap.add_argument("--epochs", type=int, default=40, help="the recipe's epochs, both methods")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    common = load_anchor("common", args.anchors)
    common.setup_torch(args.threads)
    bench_a = None if args.skip_cleanlab else load_anchor("bench_a_label_errors", args.anchors)
    if args.model == "mlp" and args.epochs != 40:
        ap.error("the MLP rows follow the anchors' recipe: 40 epochs")
    results: dict = {"threads": args.threads, "seeds": args.seeds, "model": args.model, "epochs": args.epochs,
                     "results": {}}
    lines = ["| data | noise | method | trainings | precision | recall | F1 | AUROC | P@k | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for ds in args.datasets:
        x, _, y, _ = common.load_dataset(ds)
        for noise in args.noise:
            kind, rate = common.NOISE_SETTINGS[noise]
            rows: dict[str, list[dict]] = {"trainground": [], "cleanlab": []}
            for seed in args.seeds:
                y_noisy, truth = common.inject_noise(y, kind, rate, seed)
                rows["trainground"].append(trainground_run(x, y_noisy, truth, seed, args.threads, args.full_training,
                                                           args.model, args.epochs))
                if bench_a is not None:
                    rows["cleanlab"].append(cleanlab_run(bench_a, x, y_noisy, truth, seed, args.model, args.epochs))
                msg = {m: round(r[-1]["f1"], 3) for m, r in rows.items() if r}
                print(f"[{ds} {noise} seed {seed}] F1 {msg} wall "
                      f"{ {m: round(r[-1]['wall_s'], 1) for m, r in rows.items() if r} }", flush=True)
            results["results"].setdefault(ds, {})[noise] = {
                m: {"per_seed": r, "summary": summarize(r)} for m, r in rows.items() if r
            }
            for method, r in rows.items():
                if not r:
                    continue
                s = summarize(r)
                name = "trainground diagnose (1 run + short 2nd pass)" if method == "trainground" else "cleanlab 5-fold find_label_issues"
                name += "" if args.model == "mlp" else f", {args.model} {args.epochs} epochs"
                cells = " | ".join(f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"
                                   for k in ("precision", "recall", "f1", "auroc", "precision_at_k"))
                lines.append(f"| {ds} | {noise} | {name} | {s['trainings']['mean']:.2f} | {cells} | {s['wall_s']['mean']:.1f} |")
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
