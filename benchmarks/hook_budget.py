"""Where the Lightning callback's per-step time goes, and what each of its parts costs.

``TraingroundCallback``'s hooks are called by hand around an ordinary step (forward,
``backward``, ``optimizer.step()``: the order Lightning calls them in), so the time inside
each hook can be read with ``perf_counter`` without Lightning's loop around it. Several
callbacks (variants) train their own copy of the benchmark's model (digits, MLP 256-256,
Adam 1e-3, batch 64, 21 steps per epoch), epoch after epoch in one process, in rotating order.
Per variant and hook: the time per training step of each epoch; the figure is the minimum
over epochs (a loaded machine only ever adds time; an epoch that closes a representation
window is costlier, so the median is printed too). What this does not see: the monitors'
forward hooks inside the model's forward on sampled steps, and Lightning's own dispatch.

Variants: default (monitors at their default sampling, 1 step in 20 since issue 16/17's
decision; records, features, the gradient chain), sample10 / sample20
(``DiagnosisConfig(sample_every=10 / 20)``), no-chain (``guard=None``), no-features
(``SessionConfig(features=False)``), no-monitors (``training_checks=None``), records-only
(no chain, no monitors, no features: per-sample records and epoch totals only).

Usage: python benchmarks/hook_budget.py [--epochs 30] [--variants default no-chain ...] [--out x.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import own_training as ot
from label_errors import ANCHORS, load_anchor

from trainground.data import WithIndex, stratified_split
from trainground.diagnosis import DiagnosisConfig
from trainground.integrations import SessionConfig
from trainground.integrations.lightning import TraingroundCallback

HOOKS = ("batch_start", "before_backward", "after_backward", "chain", "batch_end", "validation", "epoch_end")
VARIANTS = {
    "bare": None,  # no callback: the same hand-written steps, for the whole-step column
    "default": {},
    "sample10": {"config": SessionConfig(training_checks=DiagnosisConfig(sample_every=10))},  # the old default
    "sample20": {"config": SessionConfig(training_checks=DiagnosisConfig(sample_every=20))},
    "no-chain": {"guard": None},
    "no-features": {"config": SessionConfig(features=False)},
    "no-monitors": {"config": SessionConfig(training_checks=None)},
    "records-only": {"guard": None, "config": SessionConfig(training_checks=None, features=False)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    common = load_anchor("common", ANCHORS)
    common.setup_torch(1)
    x_np, _, y_np, _ = common.load_dataset("digits")
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    train_pos, val_pos = stratified_split(y_np, fraction=0.1, seed=0)
    data = TensorDataset(x, y)
    train = WithIndex(Subset(data, train_pos.tolist()))
    val = WithIndex(Subset(data, val_pos.tolist()), offset=len(train_pos))
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val, batch_size=1024)
    batches, val_batches = list(loader), list(val_loader)
    runs = {}
    for name in args.variants:
        model = ot._model(x, train_pos, 0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        trainer = types.SimpleNamespace(optimizers=[optimizer], train_dataloader=loader, val_dataloaders=val_loader,
                                        is_global_zero=True, sanity_checking=False, should_stop=False)
        cb = None if VARIANTS[name] is None else TraingroundCallback(stop_early=False, **VARIANTS[name])
        runs[name] = (model, optimizer, trainer, cb, {h: [] for h in (*HOOKS, "epoch")})
    # wall (default, as before) or the thread's CPU time (a loaded machine's waits for a core not counted)
    clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns

    def epoch(model, optimizer, trainer, cb, spent) -> None:
        e = dict.fromkeys(HOOKS, 0)
        start = clock()
        if cb is None:
            bare_epoch(model, optimizer)
            spent["epoch"].append((clock() - start) / len(batches) / 1e3)
            return
        model.train()
        for i, batch in enumerate(batches):
            t = clock(); cb.on_train_batch_start(trainer, model, batch, i); e["batch_start"] += clock() - t
            _, xb, yb = batch
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            t = clock(); cb.on_before_backward(trainer, model, loss); e["before_backward"] += clock() - t
            loss.backward()
            t = clock(); cb.on_after_backward(trainer, model); e["after_backward"] += clock() - t
            t = clock(); cb.on_before_optimizer_step(trainer, model, optimizer); e["chain"] += clock() - t
            optimizer.step()
            optimizer.zero_grad()
            t = clock()
            cb.on_train_batch_end(trainer, model, {"loss": loss, "logits": logits}, batch, i)
            e["batch_end"] += clock() - t
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(val_batches):
                _, xb, yb = batch
                logits = model(xb)
                t = clock()
                cb.on_validation_batch_end(trainer, model, {"loss": F.cross_entropy(logits, yb), "logits": logits},
                                           batch, i)
                e["validation"] += clock() - t
        t = clock(); cb.on_train_epoch_end(trainer, model); e["epoch_end"] += clock() - t
        spent["epoch"].append((clock() - start) / len(batches) / 1e3)
        for h in HOOKS:
            spent[h].append(e[h] / len(batches) / 1e3)

    def bare_epoch(model, optimizer) -> None:
        model.train()
        for batch in batches:
            _, xb, yb = batch
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        with torch.no_grad():
            for batch in val_batches:
                _, xb, yb = batch
                F.cross_entropy(model(xb), yb)

    names = list(runs)
    for ep in range(args.epochs):
        for k in range(len(names)):  # rotating order: no variant always runs right after another
            epoch(*runs[names[(ep + k) % len(names)]])
    out: dict = {"clock": args.clock, "epochs": args.epochs, "steps_per_epoch": len(batches), "unit": "microseconds per training step",
                 "variants": {}}
    bare = runs["bare"][-1]["epoch"][2:] if "bare" in runs else None
    for name, (*_, spent) in runs.items():
        tail = {h: v[2:] for h, v in spent.items() if v}  # the first two epochs allocate the tables
        row = {"min": {h: min(v) for h, v in tail.items()}, "median": {h: statistics.median(v) for h, v in tail.items()}}
        hooks = [h for h in HOOKS if h in tail]
        row["min_total"] = sum(row["min"][h] for h in hooks)
        row["median_total"] = sum(row["median"][h] for h in hooks)
        if bare is not None:
            # The whole epoch (steps, forward hooks, validation, epoch end) per training step, over
            # the bare epoch: the minimum of each over the epochs (load only ever adds time).
            row["step_ratio_of_minima"] = min(tail["epoch"]) / min(bare)
            # Each epoch over the bare epoch of the same rotation (run within a second of it):
            # the load's slow drift cancels in the pair.
            paired = [a / b for a, b in zip(tail["epoch"], bare, strict=True)]
            row["step_ratio_paired"] = {"median": statistics.median(paired),
                                        "iqr": [float(q) for q in statistics.quantiles(paired, n=4)[::2]]}
        out["variants"][name] = row
        print(f"{name:13s} whole step min {row['min']['epoch']:7.1f} us"
              + (f" (x{row['step_ratio_of_minima']:.3f} of bare; paired x{row['step_ratio_paired']['median']:.3f} "
                 f"[{row['step_ratio_paired']['iqr'][0]:.3f}, {row['step_ratio_paired']['iqr'][1]:.3f}])"
                 if bare is not None else "")
              + f"  hooks min total {row['min_total']:6.1f}  median total {row['median_total']:7.1f}  | "
              + "  ".join(f"{h} {row['min'][h]:.1f}" for h in hooks), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
