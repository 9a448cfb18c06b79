"""Benchmark: peak memory of ``trainground diagnose`` on an image folder of 5,000 vs 50,000 images.

Goal (issue 17): the peak resident memory of the 50,000-image run stays within 2x that of
the 5,000-image run, i.e. memory does not grow with the dataset beyond the per-sample
records. Folders above ``data.images.STREAM_BYTES`` of decoded pixels are streamed
(decoded per batch, ``data.image_files.ImageFiles``); smaller ones are held in memory.

The images are generated (10 classes, 32 x 32 RGB PNG): each class is a coloured
diagonal stripe pattern at its own angle, plus uniform noise, so the model learns
something and the diagnosis has work to do. Each ``diagnose`` runs as its own process
(``python -m trainground.cli diagnose FOLDER --out RUN --epochs E``); its peak
RSS is read from ``os.wait4``'s resource usage of that child alone.

    python benchmarks/streaming.py --sizes 5000 50000 --epochs 2 --out benchmarks/results/streaming.json

``--stream`` streams every size (not only those past the limit). ``--eager`` adds a run of the largest size with streaming off (``data.stream_images: false``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = 32
CLASSES = 10
ROOT = Path(__file__).resolve().parents[1]


def generate(folder: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    colours = rng.uniform(0.2, 1.0, (CLASSES, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, n)
    for c in range(CLASSES):
        (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(labels):
        angle = np.pi * c / CLASSES
        stripes = 0.5 + 0.5 * np.sin(12.0 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
        image = stripes[..., None] * colours[c] + rng.uniform(-0.35, 0.35, (SIDE, SIDE, 3)).astype(np.float32)
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"class_{c}" / f"{i:06d}.png")


def run_diagnose(folder: Path, out: Path, epochs: int, *, stream: bool | None) -> dict:
    command = [sys.executable, "-m", "trainground.cli", "diagnose", str(folder), "--out", str(out),
               "--epochs", str(epochs), "--batch-size", "256"]
    if stream is not None:
        config = out.parent / f"{out.name}.yaml"
        config.write_text(f"data:\n  stream_images: {str(stream).lower()}\n")
        command += ["--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    stderr = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"diagnose failed:\n{stderr[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eager", action="store_true", help="also run the largest size with streaming off")
    parser.add_argument("--stream", action="store_true", help="stream every size (data.stream_images: true)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = Path(tmp) / f"images_{n}"
            generate(folder, n)
            decoded_mb = n * 3 * SIDE * SIDE * 4 / 2**20
            runs = [("stream", True) if args.stream else ("auto", None)] + ([("eager", False)] if args.eager and n == max(args.sizes) else [])
            for name, stream in runs:
                result = run_diagnose(folder, Path(tmp) / f"run_{n}_{name}", args.epochs, stream=stream)
                row = {"n": n, "mode": name, "decoded_pixels_mb": round(decoded_mb, 1), "epochs": args.epochs,
                       **result}
                print(json.dumps(row), flush=True)
                rows.append(row)
    mode = "stream" if args.stream else "auto"
    base = next(r for r in rows if r["n"] == min(args.sizes) and r["mode"] == mode)
    top = next(r for r in rows if r["n"] == max(args.sizes) and r["mode"] == mode)
    summary = {"peak_ratio_largest_to_smallest": round(top["peak_rss_mb"] / base["peak_rss_mb"], 2),
               "load": os.getloadavg()[0], "cpus": os.cpu_count()}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
