"""How long a 100k-sample run's ``report.html`` takes to render, how big it is, and how long
it takes to open in headless Chromium (navigation start to every figure drawn).

The 100k-sample run directory is a real run scaled up, not a 100k-sample training (which
would take an hour of this 2-core machine and test nothing the report does differently):

1. A real demo run: digits, clean 20 % test split, 20 % symmetric label noise,
   ``diagnose_dataset`` (guarded training, every monitor, every check), 20 epochs max.
2. Its files are replicated to ``--samples`` rows, as a run on that many samples with the
   same batch size and epochs would write them:
   - ``data.csv``: the digits rows tiled to N rows with +-0.5 pixel jitter (``pixel_0..63``,
     ``label``), so thumbnails are read from a 100k-row CSV as they would be;
   - ``sample_issues.csv``: N rows, the real rows tiled, scores jittered within [0, 1];
   - ``metrics.jsonl``: each epoch's real step records stretched to ceil(0.9 N / 64) steps
     per epoch (tens of thousands of steps), with 25 injected spikes (norm x100, skipped)
     and their ``skip`` records in ``actions.jsonl``;
   - ``layers.parquet``: the real per-layer statistics stretched to one sampled step in 10
     over the longer run (the monitors' default sampling);
   - ``findings.json``, ``model.safetensors`` and ``config.yaml`` (source -> data.csv) copied.

Then, ``--repeats`` times: render (``write_report``) and open the page in a fresh headless
Chromium (``--headless --no-sandbox --disable-gpu --disable-background-networking``, a new
profile each time: a cold load). Reported: medians, and the figures of every repeat.

Goal (issue 8): the 100k-sample report loads in under 5 s.

Usage: python benchmarks/report_load.py [--samples 100000] [--repeats 5] [--threads 1]
           [--json benchmarks/results/report_load.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainground.diagnosis.layers_file import read_layers, write_layers_part
from trainground.engine import (
    DataConfig,
    FitConfig,
    NoiseConfig,
    RunConfig,
    RunDir,
    prepare_data,
)
from trainground.recipes.diagnose import diagnose_dataset
from trainground.report import write_report
from trainground.report.browser import headless_chromium, load_report
from trainground.report.read import read_jsonl

BATCH, VAL_FRACTION = 64, 0.1
BASE = RunConfig(
    data=DataConfig(source="builtin:digits", test_fraction=0.2, noise=NoiseConfig(kind="symmetric", rate=0.2, seed=0)),
    fit=FitConfig(epochs=20, seed=0, batch_size=BATCH, val_fraction=VAL_FRACTION),
)


def base_run(folder: Path) -> RunDir:
    run = RunDir.create(folder)
    run.write_config(BASE.to_dict())
    prepared = prepare_data(BASE.data)
    diagnose_dataset(prepared.train, fit_config=BASE.fit, model_config=BASE.model, run_dir=run)
    return run


def scale_run(base: RunDir, folder: Path, samples: int, rng: np.random.Generator) -> RunDir:
    run = RunDir.create(folder)
    for name in ("findings.json", "model.safetensors"):
        shutil.copy(base.path / name, run.path / name)
    # data.csv: the digits tiled with jitter, the source thumbnails are read from
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.arange(samples) % len(digits.target)
    pixels = np.clip(digits.data[rows] + rng.uniform(-0.5, 0.5, size=(samples, 64)), 0, 16).round(2)
    frame = pd.DataFrame(pixels, columns=[f"pixel_{i}" for i in range(64)])
    frame["label"] = digits.target[rows]
    frame.to_csv(run.path / "data.csv", index=False)
    config = base.read_config()
    config["data"].update(source=str(run.path / "data.csv"), target="label", test_fraction=0.0)
    run.write_config(config)
    # sample_issues.csv: N rows
    table = pd.read_csv(base.sample_issues)
    big = table.iloc[np.arange(samples) % len(table)].reset_index(drop=True)
    big["index"] = np.arange(samples)
    for column in [c for c in big.columns if c.endswith("_score")]:
        big[column] = np.clip(big[column] + rng.normal(0, 0.01, samples), 0, 1)
    big.to_csv(run.sample_issues, index=False)
    # metrics.jsonl: every epoch stretched to the step count of N samples
    records, _ = read_jsonl(base.metrics)
    per_epoch = math.ceil((1 - VAL_FRACTION) * samples / BATCH)
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    out, step = [], 0
    spikes = set(rng.choice(per_epoch * len(epochs), size=25, replace=False).tolist())
    actions = []
    for epoch in epochs:
        own = [r for r in steps if r["epoch"] == epoch["epoch"]]
        for k in range(per_epoch):
            step += 1
            record = dict(own[k * len(own) // per_epoch], step=step)
            for key in ("loss", "grad_norm"):
                if record.get(key) is not None:
                    record[key] *= float(np.exp(rng.normal(0, 0.05)))
            if step in spikes:
                record.update(grad_norm=record["grad_norm"] * 100, skipped=1.0)
                actions.append({"step": step, "action": "skip", "reason": "gradient norm is a spike",
                                "evidence": {"grad_norm": record["grad_norm"]}})
            out.append(record)
        out.append(dict(epoch, step=step))
    out += [dict(r, step=step) for r in records if r["kind"] == "test"]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    run.actions.write_text("".join(json.dumps(a) + "\n" for a in actions), encoding="utf-8")
    # layers.parquet: the real statistics stretched over the longer run, one sampled step in 10
    layers = read_layers(base.layers)
    base_steps = np.sort(layers["step"].unique())
    total = step
    for part, chunk in enumerate(np.array_split(np.arange(1, total + 1, 10), 10)):
        source = base_steps[np.minimum((chunk - 1) * len(base_steps) // total, len(base_steps) - 1)]
        mapping = pd.DataFrame({"step": source, "new_step": chunk})
        piece = layers.merge(mapping, on="step").drop(columns=["step"]).rename(columns={"new_step": "step"})
        piece["value"] = piece["value"] * np.exp(rng.normal(0, 0.05, len(piece)))
        write_layers_part(run.layers, piece[["step", "epoch", "layer", "stat", "value"]], part)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = args.keep or Path(tempfile.mkdtemp(prefix="tg-report-load-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = base_run(root / "base")
    print(f"base run: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    run = scale_run(base, root / f"run-{args.samples}", args.samples, np.random.default_rng(0))
    with open(run.metrics, encoding="utf-8") as fh:
        n_steps = sum(1 for line in fh if '"kind": "step"' in line)
    n_layer_rows = len(read_layers(run.layers))
    print(f"scaled run: {args.samples} samples, {n_steps} steps, {n_layer_rows} layer rows "
          f"({time.perf_counter() - started:.1f} s to build)")
    renders, loads, walls = [], [], []
    size = 0
    for repeat in range(args.repeats):
        t0 = time.perf_counter()
        page = write_report(run.path)
        renders.append(time.perf_counter() - t0)
        size = page.stat().st_size
        with headless_chromium() as driver:
            load = load_report(driver, page, timeout=120)
        if load.errors or load.drawn != load.plots:
            raise SystemExit(f"page broken: {load.errors}, {load.drawn}/{load.plots} plots drawn")
        loads.append(load.rendered_ms / 1000)
        walls.append(load.wall_s)
        print(f"repeat {repeat}: render {renders[-1]:.2f} s, load {loads[-1]:.2f} s "
              f"(driver.get to drawn {walls[-1]:.2f} s), {load.plots} plots")
    result = {
        "samples": args.samples, "steps": n_steps, "layer_rows": n_layer_rows, "html_bytes": size,
        "render_s": renders, "load_s": loads, "wall_s": walls,
        "median_render_s": statistics.median(renders), "median_load_s": statistics.median(loads),
        "median_wall_s": statistics.median(walls), "threads": args.threads, "torch": torch.__version__,
    }
    print(f"median: render {result['median_render_s']:.2f} s, load {result['median_load_s']:.2f} s, "
          f"html {size / 1e6:.2f} MB (goal: load < 5 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
