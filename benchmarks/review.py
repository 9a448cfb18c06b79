"""How long the review page of a 100k-sample run takes: start-up (indexing sample_issues.csv into
SQLite, reading the pixel table once) and each request, served by a real uvicorn server.

The run is ``report_load.py``'s: a real demo run (digits, 20 % label noise, full diagnosis)
scaled to ``--samples`` rows (``data.csv`` of 64 pixel columns, ``sample_issues.csv`` with the
real rows tiled and scores jittered, the real ``model.safetensors``). The server is
``trainground review RUN --port 0`` in its own process; requests go through HTTP (httpx),
so the figures include the templates, the thumbnails of the page's 50 samples and the
SQL queries. Each figure is the median of ``--repeats``, interleaved request by request.

Goal (issue 22): the first page of a 100k-sample run in under 1 s.

Usage: python benchmarks/review.py [--samples 100000] [--repeats 7] [--json benchmarks/results/review.json]
       python benchmarks/review.py --screenshot docs/review.png --shot-run RUN_DIR
           (the README's picture: RUN_DIR's review page with a few decisions, in headless Chromium)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_load import base_run, scale_run  # noqa: E402 - the same scaled run as the report benchmark


def start(run: Path) -> tuple[subprocess.Popen, str, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    t0 = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "trainground.cli", "review", str(run), "--port", "0",
                                "--reviewer", "bench"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    for line in process.stdout:
        match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        if match:
            return process, match.group(1), time.perf_counter() - t0
    raise SystemExit("the review server did not start")


def timed(client, method: str, url: str, **kw) -> float:
    t0 = time.perf_counter()
    response = getattr(client, method)(url, **kw)
    elapsed = time.perf_counter() - t0
    if response.status_code not in (200, 303):
        raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
    return elapsed


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    parser.add_argument("--screenshot", type=Path, default=None, help="only take the README's screenshot")
    parser.add_argument("--shot-run", type=Path, default=None, help="the run the screenshot shows (a copy is used)")
    args = parser.parse_args()
    if args.screenshot is not None:
        screenshot(args.shot_run, args.screenshot)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="tg-review-"))
    root.mkdir(parents=True, exist_ok=True)
    base = base_run(root / "base")
    run = scale_run(base, root / f"run-{args.samples}", args.samples, np.random.default_rng(0)).path
    # the first start indexes sample_issues.csv into review.sqlite; later starts find it current
    process, url, cold_start = start(run)
    process.kill()
    process.wait()
    process, url, warm_start = start(run)
    base_url, token = url.split("/?token=")
    cases = {
        "first page": "/",
        "page 100": "/?page=100",
        "filter: outlier issues": "/?issue=outlier",
        "filter: class 3, score <= 0.1": "/?cls=3&max_score=0.1",
        "filter: undecided": "/?status=undecided",
        "sample page (neighbours among all rows)": "/sample/17",
    }
    figures: dict[str, list[float]] = {name: [] for name in [*cases, "decision (POST, committed)"]}
    try:
        with httpx.Client(base_url=base_url, headers={"X-Review-Token": token}, timeout=120) as client:
            first = timed(client, "get", "/")  # the very first request of the process
            # the representation of every sample is computed in the background: until it is ready a
            # sample page has no neighbours; the sample-page figures below are taken once it is
            t0 = time.perf_counter()
            while 'id="neighbours"' not in client.get("/sample/17").text:
                if time.perf_counter() - t0 > 600:
                    raise SystemExit("the neighbours were not ready after 10 minutes")
                time.sleep(0.5)
            neighbours_ready = time.perf_counter() - t0 + first
            for _ in range(args.repeats):
                for name, path in cases.items():
                    figures[name].append(timed(client, "get", path))
                figures["decision (POST, committed)"].append(
                    timed(client, "post", "/decide", data={"sample": 17, "action": "keep"}))
    finally:
        process.kill()
        process.wait()
    result = {
        "samples": args.samples, "cold_start_s": round(cold_start, 3), "warm_start_s": round(warm_start, 3),
        "first_request_s": round(first, 4), "neighbours_ready_after_first_request_s": round(neighbours_ready, 1),
        "median_s": {k: round(statistics.median(v), 4) for k, v in figures.items()},
        "all_s": {k: [round(x, 4) for x in v] for k, v in figures.items()},
        "cpus": os.cpu_count(),
    }
    print(f"start-up: {cold_start:.2f} s indexing a new run, {warm_start:.2f} s later; first request {first:.3f} s; "
          f"neighbours ready {neighbours_ready:.1f} s after it")
    for name, value in result["median_s"].items():
        print(f"  {name:<42} {value * 1000:8.1f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


def screenshot(run: Path, png: Path) -> None:
    """The review page of a copy of ``run``: two reviewers' decisions, one conflict, keyboard selection."""
    import httpx

    from trainground.report.browser import headless_chromium

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("review.sqlite*", "report.html"))
        process, url, _ = start(copy)
        try:
            base_url, token = url.split("/?token=")
            with httpx.Client(base_url=base_url, headers={"X-Review-Token": token}) as client:
                page = client.get("/?issue=label").text
                rows = [int(i) for i in re.findall(r'id="s-(\d+)"', page)]
                client.post("/decide", data={"sample": rows[0], "action": "accept"})
                client.post("/decide", data={"sample": rows[1], "action": "keep"})
                client.post("/decide", data={"sample": rows[2], "action": "exclude"})
                client.post("/decide", data={"sample": rows[0], "action": "keep"}, cookies={"tg_reviewer": "bo"})
            with headless_chromium(width=1100, height=620) as driver:
                driver.get(url + "&issue=label")
                png.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(png))
        finally:
            process.kill()
            process.wait()
    from PIL import Image

    with Image.open(png) as image:  # a palette PNG: a tenth of the size, the same picture for a README
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(png, optimize=True)
    print(f"wrote {png} ({png.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
