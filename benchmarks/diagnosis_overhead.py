"""Cost per step of the diagnosis monitors: ``fit`` with a ``DiagnosisCallback`` against the
same ``fit`` without it.

Recipe of ``loop_overhead.py``: digits (80/20 stratified split, seed 0), 64-256-256-10 MLP
(trainground's, with its input standardisation), Adam 1e-3, batch 64, 40 epochs (920
steps), no validation, in memory. Variants, interleaved over rounds so machine drift hits
all alike:

  fit          no callbacks
  monitors     DiagnosisCallback(checks=()): every monitor at its default sampling
               (sample_every=20 since issue 16/17's decision), per-epoch host syncs, no checks
  monitors/10  the same, sampling one step in 10 (the default before)
  monitors/20  the same, sampling one step in 20
  monitors/1   the same, sampling every step (sample_every=1): the worst case
  diagnosis    the default DiagnosisCallback(): monitors plus every check once at the end

The goal (issue 5) is monitors / fit <= 1.05 per step.

``--model cnn``: the second row, trainground's SmallCNN (channels 32-64, ~20k parameters) on
the same digits as 16x16 images (each pixel repeated 2x2), a step of ~10-20 ms CPU instead of the
MLP's ~1-2 ms (``--epochs`` to shorten it).

Usage: python benchmarks/diagnosis_overhead.py [--threads 1] [--rounds 11] [--clock wall|cpu]
       [--variants fit monitors ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from sklearn.datasets import load_digits

from trainground.data import IndexedDataset, LabelEncoder, stratified_split
from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig
from trainground.engine import FitConfig, fit
from trainground.models import MLP, SmallCNN

EPOCHS, BATCH, LR = 40, 64, 1e-3


def data(model: str = "mlp") -> IndexedDataset:
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    if model == "cnn":  # [N, 1, 16, 16]: each 8x8 pixel repeated 2x2
        x = x.reshape(-1, 1, 8, 8).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).contiguous()
    full = IndexedDataset(x, torch.tensor(d.target), torch.arange(len(d.target)),
                          LabelEncoder.fit(d.target), "image" if model == "cnn" else "table", "digits")
    train_pos, _ = stratified_split(d.target, fraction=0.2, seed=0)
    return full.subset(train_pos)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run(train: IndexedDataset, callback: DiagnosisCallback | None, threads: int,
        clock=time.perf_counter, epochs: int = EPOCHS) -> tuple[float, int]:
    torch.manual_seed(0)
    if train.features.ndim == 4:
        model = SmallCNN(1, 10, image_size=tuple(train.features.shape[2:]), channels=(32, 64))
    else:
        model = MLP(64, 10, hidden=(256, 256))
    model = model.fit_input_stats(train.features)
    config = FitConfig(epochs=epochs, batch_size=BATCH, lr=LR, val_fraction=0.0, device="cpu", threads=threads)
    start = clock()
    result = fit(model, train, config=config, callbacks=[callback] if callback else [])
    return clock() - start, result.steps


VARIANTS = {
    "fit": lambda: None,
    "monitors": lambda: DiagnosisCallback(DiagnosisConfig(checks=())),
    "monitors/10": lambda: DiagnosisCallback(DiagnosisConfig(checks=(), sample_every=10)),
    "monitors/20": lambda: DiagnosisCallback(DiagnosisConfig(checks=(), sample_every=20)),
    "monitors/1": lambda: DiagnosisCallback(DiagnosisConfig(checks=(), sample_every=1)),
    "diagnosis": lambda: DiagnosisCallback(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=11)
    # cpu: process CPU time, the steadier figure on a machine shared with other jobs (time
    # spent waiting for a core is not counted; cache and memory contention still are).
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--out", default=None, help="add this run's times under a key to this JSON file")
    parser.add_argument("--key", default=None, help="the key in --out (default: model and clock)")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    train = data(args.model)
    times: dict[str, list[float]] = {k: [] for k in VARIANTS if k in args.variants or k == "fit"}
    steps = 0
    run(train, None, args.threads, epochs=min(args.epochs, 2))  # warm-up: allocator, kernels, imports
    for _ in range(args.rounds):
        for name in times:
            seconds, steps = run(train, VARIANTS[name](), args.threads, clock, args.epochs)
            times[name].append(seconds)
    base = statistics.median(times["fit"])
    print("| variant | median s | ms/step | ratio vs fit |")
    print("|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {1000 * med / steps:.3f} | {med / base:.3f} |")
    print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in times.items()}))
    if args.out:
        from pathlib import Path

        path = Path(args.out)
        previous = json.loads(path.read_text()) if path.exists() else {}
        ratios = {k: [v / f for v, f in zip(vs, times["fit"], strict=True)] for k, vs in times.items()}
        previous[args.key or f"{args.model}_{args.clock}"] = {
            "seconds": times, "steps": steps, "epochs": args.epochs, "rounds": args.rounds, "clock": args.clock,
            "ratio_of_medians": {k: statistics.median(vs) / base for k, vs in times.items()},
            "per_round_ratio_median": {k: statistics.median(r) for k, r in ratios.items()},
            "per_round_ratio_range": {k: [min(r), max(r)] for k, r in ratios.items()},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_after": os.getloadavg()[0],
        }
        path.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
