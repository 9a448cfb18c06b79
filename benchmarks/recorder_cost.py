"""Cost of the per-sample recorder per training step (goal: <= 1.05x of the same loop without it).

Digits (80/20 stratified split, seed 0, standardised), 64-256-256-10 MLP, Adam 1e-3,
batch 64, no validation, in memory. Variants, interleaved over rounds so that machine
drift hits all alike; each reports the median over rounds of the median step time:

  fit            trainground.fit, nothing recorded
  fit+recorder   the same with ``RecordSamples`` (loss, margin, given-label probability,
                 prediction per sample, plus the running per-sample probability sums)
  fit+recorder+disk  the recorder writing samples.parquet parts (flush at every epoch end,
                 like a run directory's checkpoints), without the rest of a run directory

Step time = wall time between consecutive BATCH_END events, so the training step and
every callback of it are inside, and data loading and epoch ends are not; the whole-fit
columns also count the recorder's per-chunk processing and writes (amortised cost).

Usage: python benchmarks/recorder_cost.py [--threads 1] [--rounds 7] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from trainground.data import IndexedDataset, LabelEncoder
from trainground.engine import Callback, FitConfig, fit
from trainground.engine.sample_recording import RecordSamples
from trainground.models import MLP
from trainground.monitors.samples import SampleRecorder


class StepTimer(Callback):
    """Wall time between consecutive BATCH_END events within an epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_epoch_start(self, state) -> None:
        self._last = None

    def on_batch_start(self, state) -> None:
        if self._last is None:
            self._last = time.perf_counter()

    def on_batch_end(self, state) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


class FlushEachEpoch(Callback):
    def __init__(self, recorder: SampleRecorder) -> None:
        self.recorder = recorder

    def on_epoch_end(self, state) -> None:
        self.recorder.flush()


def dataset() -> IndexedDataset:
    d = load_digits()
    x, _, y, _ = train_test_split(d.data, d.target, test_size=0.2, stratify=d.target, random_state=0)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    return IndexedDataset(
        features=torch.from_numpy(x), labels=torch.from_numpy(y.astype(np.int64)), index=torch.arange(len(y)),
        encoder=LabelEncoder(tuple(range(10))), kind="table", name="digits",
    )


def run(variant: str, data: IndexedDataset, epochs: int, tmp: Path) -> float:
    torch.manual_seed(0)
    model = MLP(data.input_shape[0], 10)
    timer = StepTimer()
    callbacks: list[Callback] = []
    if variant != "fit":
        path = tmp / f"samples-{time.perf_counter_ns()}.parquet" if variant == "fit+recorder+disk" else None
        recorder = SampleRecorder(data.index, 10, path=path)
        callbacks = [RecordSamples(recorder)]
        if path is not None:
            callbacks.append(FlushEachEpoch(recorder))
    start = time.perf_counter()
    fit(model, data, config=FitConfig(epochs=epochs, val_fraction=0.0, device="cpu"), callbacks=[*callbacks, timer])
    if callbacks:
        recorder.close()  # what is still buffered counts too
    return statistics.median(timer.times), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = dataset()
    variants = ["fit", "fit+recorder", "fit+recorder+disk"]
    medians: dict[str, list[float]] = {v: [] for v in variants}
    totals: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        run("fit+recorder", data, 1, Path(tmp))  # warm-up
        for _ in range(args.rounds):
            for v in variants:
                step, total = run(v, data, args.epochs, Path(tmp))
                medians[v].append(step)
                totals[v].append(total)
    base, base_total = statistics.median(medians["fit"]), statistics.median(totals["fit"])
    rows = {
        v: {"median_ms_per_step": 1e3 * statistics.median(m), "ratio": statistics.median(m) / base,
            "total_s": statistics.median(totals[v]), "total_ratio": statistics.median(totals[v]) / base_total}
        for v, m in medians.items()
    }
    print("| variant | median ms/step | step ratio vs fit | whole fit s | whole-fit ratio |\n|---|---|---|---|---|")
    for v, r in rows.items():
        print(f"| {v} | {r['median_ms_per_step']:.3f} | {r['ratio']:.3f} | {r['total_s']:.3f} | {r['total_ratio']:.3f} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
