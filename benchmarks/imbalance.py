"""Class-imbalance losses on an imbalanced digits: plain CE vs class weights, focal, smoothing.

Protocol (fixed before any run):
  data    digits, the anchors' split (80/20 stratified train_test_split, random_state 0,
          StandardScaler fitted on train); then in the TRAIN split every class in
          --minority (default 0-4) keeps round(n_c / --factor) of its samples (default 10x
          fewer), drawn with numpy default_rng(seed). The test split is untouched (balanced).
  model   the anchors' MLP in-256-256-C (ReLU), torch.manual_seed(seed) before construction
  train   trainground.fit: Adam lr 1e-3, batch 64, 40 epochs (the anchors' recipe, chosen
          before running), no validation split, no early stopping; the loss is built by
          trainground.losses.build_loss from a LossConfig, class weights counted on the
          down-sampled training labels
  metrics balanced accuracy, macro-F1, accuracy and mean recall of the minority classes on
          the clean test split; mean +- std (population) over seeds 0, 1, 2

Usage:
  python benchmarks/imbalance.py [--threads 1] [--seeds 0 1 2] [--out imbalance.json]
  python benchmarks/imbalance.py --data table.csv --target label   # any table of the same form
  python benchmarks/imbalance.py --anchors ../shared/anchors       # check the split equals the anchors'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from trainground.data import IndexedDataset, LabelEncoder, load_data
from trainground.engine import FitConfig, fit
from trainground.losses import LossConfig, build_loss

EPOCHS, BATCH, LR = 40, 64, 1e-3

# name -> loss config (None: plain CE on the full, balanced training split, the ceiling)
VARIANTS: dict[str, LossConfig | None] = {
    "ce": LossConfig(),
    "weighted_ce inverse": LossConfig(name="weighted_ce", weighting="inverse"),
    "weighted_ce inverse_sqrt": LossConfig(name="weighted_ce", weighting="inverse_sqrt"),
    "weighted_ce effective_number b=0.99": LossConfig(name="weighted_ce", weighting="effective_number", beta=0.99),
    "weighted_ce effective_number b=0.999": LossConfig(name="weighted_ce", weighting="effective_number", beta=0.999),
    "focal g=2": LossConfig(name="focal", gamma=2.0),
    "focal g=2 + alpha effective_number b=0.999": LossConfig(
        name="focal", gamma=2.0, weighting="effective_number", beta=0.999
    ),
    "ce + label_smoothing 0.1": LossConfig(label_smoothing=0.1),
    "oracle: ce on the balanced train split": None,
}


def anchors_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The anchors' ``load_dataset`` split: 80/20 stratified (seed 0), train-fitted scaler."""
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr).astype(np.float32), scaler.transform(x_te).astype(np.float32), y_tr, y_te


def downsample(y: np.ndarray, minority: list[int], factor: float, seed: int) -> np.ndarray:
    """Positions kept: all of the majority classes, round(n_c / factor) of each minority class."""
    rng = np.random.default_rng(seed)
    keep = [np.flatnonzero(~np.isin(y, minority))]
    for c in minority:
        members = np.flatnonzero(y == c)
        keep.append(rng.choice(members, size=max(1, int(round(len(members) / factor))), replace=False))
    return np.sort(np.concatenate(keep))


def mlp(in_dim: int, classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, classes),
    )


def run_one(x_tr, y_tr, x_te, y_te, config: LossConfig | None, seed: int, minority: list[int], classes: int, threads: int):
    torch.manual_seed(seed)
    model = mlp(x_tr.shape[1], classes)
    data = IndexedDataset(
        features=torch.from_numpy(x_tr), labels=torch.from_numpy(y_tr.astype(np.int64)),
        index=torch.arange(len(y_tr)), encoder=LabelEncoder.fit(np.arange(classes)), kind="table", name="bench",
    )
    loss_fn = build_loss(config or LossConfig(), y_tr, num_classes=classes)
    cfg = FitConfig(epochs=EPOCHS, batch_size=BATCH, lr=LR, val_fraction=0.0, seed=seed, device="cpu", threads=threads)
    started = time.perf_counter()
    fit(model, data, config=cfg, loss_fn=loss_fn)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        pred = model.eval()(torch.from_numpy(x_te)).argmax(1).numpy()
    return {
        "balanced_accuracy": balanced_accuracy_score(y_te, pred),
        "macro_f1": f1_score(y_te, pred, average="macro"),
        "accuracy": float((pred == y_te).mean()),
        "minority_recall": float(np.mean(recall_score(y_te, pred, labels=minority, average=None))),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default="builtin:digits")
    parser.add_argument("--target", default=None)
    parser.add_argument("--minority", type=int, nargs="+", default=None, help="class ids down-sampled (default: the first half)")
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--anchors", type=Path, default=None, help="folder of the anchors' common.py: check the split")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = load_data(args.data, target=args.target)
    classes = loaded.num_classes
    x_tr, x_te, y_tr, y_te = anchors_split(loaded.features.numpy().astype(np.float64), loaded.labels.numpy())
    if args.anchors is not None:
        sys.path.insert(0, str(args.anchors))
        from common import load_dataset  # type: ignore[import-not-found]

        ref = load_dataset("digits")
        same = all(np.array_equal(a, b) for a, b in zip((x_tr, x_te, y_tr, y_te), ref, strict=True))
        print(f"split identical to the anchors' load_dataset('digits'): {same}")
        if not same:
            raise SystemExit(1)
    minority = args.minority if args.minority is not None else list(range(classes // 2))

    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for seed in args.seeds:
        keep = downsample(y_tr, minority, args.factor, seed)
        for name, config in VARIANTS.items():
            xs, ys = (x_tr, y_tr) if config is None else (x_tr[keep], y_tr[keep])
            results[name].append(run_one(xs, ys, x_te, y_te, config, seed, minority, classes, args.threads))
        counts = np.bincount(y_tr[keep], minlength=classes)
        print(f"seed {seed}: train counts {counts.tolist()} ({len(keep)} samples), test {len(y_te)}", flush=True)

    print(f"\n{args.data}, minority {minority} down-sampled {args.factor:g}x, seeds {args.seeds}, {EPOCHS} epochs\n")
    print("| loss | balanced acc | macro-F1 | accuracy | minority recall |")
    print("|---|---|---|---|---|")
    summary = {}
    for name, runs in results.items():
        row = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in runs[0]}
        summary[name] = {"mean_std": row, "runs": runs}
        cells = " | ".join(f"{100 * row[k][0]:.1f} ± {100 * row[k][1]:.1f}" for k in
                           ("balanced_accuracy", "macro_f1", "accuracy", "minority_recall"))
        print(f"| {name} | {cells} |")
    if args.out:
        meta = {"data": args.data, "minority": minority, "factor": args.factor, "seeds": args.seeds, "epochs": EPOCHS,
                "threads": args.threads, "torch": torch.__version__}
        args.out.write_text(json.dumps({"meta": meta, "results": summary}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
