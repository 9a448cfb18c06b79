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

Besides the fits' medians, each fit's CPU time is cut into segments (fit start to the first
epoch end, epoch to epoch, the last epoch to the fit's end; :class:`EpochClock`), and a fit is
rebuilt from each segment's minimum over the rounds: segment e of every round does the same
work, so its minimum is the least-loaded measurement of that work (rare costly epochs stay in).
On a loaded machine that ratio is much steadier than the medians.

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

import numpy as np
import torch
from sklearn.datasets import load_digits

from trainground.data import IndexedDataset, LabelEncoder, stratified_split
from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig
from trainground.engine import Callback, FitConfig, fit
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


class EpochClock(Callback):
    """CPU time of each segment of a fit: fit start to the first epoch end, epoch end to epoch
    end, the last epoch end to the fit's end. Put one ``first`` (it starts the clock before
    every other callback's fit start) and one last (it reads the clock after every other
    callback's epoch and fit end)."""

    def __init__(self, first: bool, segments: list[float]) -> None:
        self.first, self.segments = first, segments

    def on_fit_start(self, state) -> None:
        if self.first:
            self.segments.append(time.process_time())

    def on_epoch_end(self, state) -> None:
        if not self.first:
            self.segments.append(time.process_time())

    def on_fit_end(self, state) -> None:
        if not self.first:
            self.segments.append(time.process_time())


def run(train: IndexedDataset, callback: DiagnosisCallback | None, threads: int,
        clock=time.perf_counter, epochs: int = EPOCHS, segments: list[float] | None = None) -> tuple[float, int]:
    torch.manual_seed(0)
    if train.features.ndim == 4:
        model = SmallCNN(1, 10, image_size=tuple(train.features.shape[2:]), channels=(32, 64))
    else:
        model = MLP(64, 10, hidden=(256, 256))
    model = model.fit_input_stats(train.features)
    config = FitConfig(epochs=epochs, batch_size=BATCH, lr=LR, val_fraction=0.0, device="cpu", threads=threads)
    start = clock()
    marks: list[float] = []
    callbacks = [EpochClock(True, marks), *([callback] if callback else []), EpochClock(False, marks)]
    result = fit(model, train, config=config, callbacks=callbacks)
    if segments is not None:
        segments.extend(np.diff(marks).tolist())
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
    segments: dict[str, list[list[float]]] = {k: [] for k in times}  # per round: CPU s of each fit segment
    steps = 0
    run(train, None, args.threads, epochs=min(args.epochs, 2))  # warm-up: allocator, kernels, imports
    for _ in range(args.rounds):
        for name, values in times.items():
            segments[name].append([])
            seconds, steps = run(train, VARIANTS[name](), args.threads, clock, args.epochs, segments[name][-1])
            values.append(seconds)
    base = statistics.median(times["fit"])
    print("| variant | median s | ms/step | ratio vs fit |")
    print("|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {1000 * med / steps:.3f} | {med / base:.3f} |")
    print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in times.items()}))
    # Segment e of every round does the same work, so its minimum over the rounds is that work
    # with the least load on it (the rare costly epochs, a representation window, stay in).
    minima = {k: float(np.min(np.array(v), axis=0).sum()) for k, v in segments.items()}
    print("fit built from each segment's minimum over the rounds (process CPU s): "
          + ", ".join(f"{k} {v:.3f} (x{v / minima['fit']:.3f})" for k, v in minima.items()))
    if args.out:
        from pathlib import Path

        path = Path(args.out)
        previous = json.loads(path.read_text()) if path.exists() else {}
        ratios = {k: [v / f for v, f in zip(vs, times["fit"], strict=True)] for k, vs in times.items()}
        previous[args.key or f"{args.model}_{args.clock}"] = {
            "seconds": times, "steps": steps, "epochs": args.epochs, "rounds": args.rounds, "clock": args.clock,
            "ratio_of_medians": {k: statistics.median(vs) / base for k, vs in times.items()},
            "segment_minima_s": minima, "segment_minima_ratio": {k: v / minima["fit"] for k, v in minima.items()},
            "segments_s": segments,
            "per_round_ratio_median": {k: statistics.median(r) for k, r in ratios.items()},
            "per_round_ratio_range": {k: [min(r), max(r)] for k, r in ratios.items()},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_after": os.getloadavg()[0],
        }
        path.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
