"""Cost of ``trainground.fit`` against a plain PyTorch loop on the benchmark recipe.

Same data (digits, 80/20 stratified split, seed 0, standardised), same model
(64-256-256-10 MLP), same optimiser (Adam 1e-3), batch 64, 40 epochs, no validation.
Variants, interleaved over rounds so machine drift hits all alike:

  plain      the anchor's manual loop (randperm batches, zero_grad, backward, step)
  fit        trainground.fit, in memory (events, callbacks, running epoch metrics)
  fit+disk   trainground.fit with a run directory: metrics.jsonl, checkpoints at the
             default cadence (an epoch end at most every checkpoint_seconds = 30 s, and
             after the last epoch), final safetensors
  fit+disk+tensorboard, fit+disk+mlflow   (with --logger) fit+disk plus that logger
             (TensorBoard event files / an MLflow run in a local sqlite store), built
             before the clock starts; the difference to fit+disk is the logger's cost

Usage: python benchmarks/loop_overhead.py [--threads 2] [--rounds 5] [--logger tensorboard mlflow]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from trainground.data import IndexedDataset, LabelEncoder
from trainground.engine import FitConfig, fit

EPOCHS, BATCH, LR = 40, 64, 1e-3
# --clock cpu: process CPU time (waiting for a core on a loaded machine is not counted, nor are
# fsync waits: the run directory's disk time shows only in wall time).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def mlp(in_dim: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )


def data() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    x_train, _, y_train, _ = train_test_split(d.data, d.target, test_size=0.2, stratify=d.target, random_state=0)
    x = StandardScaler().fit_transform(x_train).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y_train.astype(np.int64))


def plain(x: torch.Tensor, y: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = mlp(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(0)
    start = clock()
    for _ in range(EPOCHS):
        for b in torch.randperm(len(y), generator=g).split(BATCH):
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clock() - start


def with_fit(x: torch.Tensor, y: torch.Tensor, *, disk: bool, logger: str | None = None,
             store: str | None = None) -> float:
    ds = IndexedDataset(x, y, torch.arange(len(y)), LabelEncoder.fit(y.numpy()), "table", "digits")
    torch.manual_seed(0)
    model = mlp(x.shape[1])
    cfg = FitConfig(epochs=EPOCHS, batch_size=BATCH, lr=LR, val_fraction=0.0, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = [] if logger is None else [make_logger(logger, Path(tmp) / "logs", store)]
        start = clock()
        fit(model, ds, config=cfg, run_dir=Path(tmp) / "run" if disk else None, callbacks=callbacks)
        return clock() - start


def make_logger(name: str, log_dir: Path, store: str | None):
    """A TensorBoard or MLflow logger, ready (the MLflow store is opened here, off the clock)."""
    from trainground.integrations import MLflowLogger, TensorBoardLogger

    if name == "tensorboard":
        return TensorBoardLogger(log_dir)
    return MLflowLogger(f"sqlite:///{store}", experiment="loop_overhead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--logger", nargs="*", choices=["tensorboard", "mlflow"], default=[],
                        help="also time fit+disk with these loggers (extras [tensorboard], [mlflow])")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    x, y = data()
    runs = {"plain": lambda: plain(x, y), "fit": lambda: with_fit(x, y, disk=False),
            "fit+disk": lambda: with_fit(x, y, disk=True)}
    store_dir = tempfile.TemporaryDirectory()  # one MLflow store for every round (its tables are made once)
    store = str(Path(store_dir.name) / "mlflow.db")
    for name in args.logger:
        runs[f"fit+disk+{name}"] = functools.partial(with_fit, x, y, disk=True, logger=name, store=store)
    for run in runs.values():  # warm-up: first-call allocations and imports
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(run())
    base = statistics.median(times["plain"])
    steps = EPOCHS * -(-len(y) // BATCH)
    print(f"digits MLP, {steps} steps, {args.threads} threads, {args.clock} clock, median of {args.rounds} rounds")
    print("| variant | median s | ms/step | ratio vs plain |")
    print("|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {1000 * med / steps:.3f} | {med / base:.2f} |")
    per_round = [d / f for d, f in zip(times["fit+disk"], times["fit"], strict=True)]
    print(f"fit+disk over fit of the same round: median {statistics.median(per_round):.3f} "
          f"(min {min(per_round):.3f}, max {max(per_round):.3f})")
    disk = statistics.median(times["fit+disk"])
    for name in args.logger:  # the logger's own cost: its variant minus fit+disk, per step
        extra = statistics.median(times[f"fit+disk+{name}"]) - disk
        print(f"{name} logger: {1000 * extra / steps:+.3f} ms/step over fit+disk")
    print(json.dumps({name: [round(v, 4) for v in values] for name, values in times.items()}))


if __name__ == "__main__":
    main()
