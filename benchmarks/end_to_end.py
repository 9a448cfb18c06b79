"""Benchmark: ``trainground diagnose`` end to end vs cleanlab with 5-fold out-of-sample
probabilities from the same model, each as its own process, interleaved.

The data: scikit-learn's digits (the 80 % stratified train split, seed 0: 1,437 rows, as
a CSV) or MNIST-1D generated at ``--n`` samples (as Parquet), with 20 % symmetric label
noise (noise seed 0; a flipped label goes to one of the other classes uniformly).

  ours      ``python -m trainground.cli diagnose FILE --target label --out RUN``, defaults:
            one early-stopped training (MLP 256-256, Adam 1e-3, batch 64, at most 20 epochs,
            10 % validation) recording every sample, a short second pass, every check, the
            run folder and its report.html. Flagged = ``is_label_issue`` of sample_issues.csv.
  cleanlab  a process that loads the same file with trainground's loader, trains the same
            model and ``fit`` (20 epochs, no validation split) on each of 5 stratified folds,
            predicts the held-out fold, runs ``cleanlab.filter.find_label_issues(n_jobs=1)``
            and writes the flags as a CSV.

For each: wall seconds of the whole process (interpreter start, imports, loading, report
included) and its peak RSS (``os.wait4``), plus the in-process seconds of the diagnosis
itself (ours: ``Diagnosis.seconds`` as the CLI prints it; cleanlab: the 5 trainings and
``find_label_issues``), and the process's user + system CPU seconds (``cpu_s``; on a shared,
loaded machine the figure that moves least with the load). All ratios come from the same
runs, A/B order alternating.

    python benchmarks/end_to_end.py --data digits --repeats 3 --out benchmarks/results/end_to_end_digits.json
    python benchmarks/end_to_end.py --data mnist1d --n 200000 --repeats 1 --out benchmarks/results/end_to_end_mnist1d.json

``--single-pass`` adds ours with ``--no-second-pass`` (one training) as a third process per
repeat, in the rotated order. ``--concurrent`` starts a repeat's processes at the same time
instead of one after the other (on a shared, loaded machine the load moves over the tens of
minutes a 200k pair takes; side by side, every process sees the same load; each still runs
one thread, and its peak RSS and wall time are its own).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.2
FOLDS = 5


def make_data(kind: str, n: int, folder: Path) -> tuple[Path, np.ndarray]:
    """The noisy table written to ``folder`` and the mask of flipped rows."""
    import pandas as pd

    if kind == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x, _, y, _ = train_test_split(digits.data, digits.target, test_size=0.2, stratify=digits.target, random_state=0)
        columns = [f"pixel_{i}" for i in range(x.shape[1])]
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = n
        raw = make_dataset(args)
        x, y = np.concatenate([raw["x"], raw["x_test"]]), np.concatenate([raw["y"], raw["y_test"]])
        columns = [f"x_{i}" for i in range(x.shape[1])]
    rng = np.random.default_rng(0)
    classes = int(y.max()) + 1
    flip = rng.random(len(y)) < NOISE
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, classes, int(flip.sum()))) % classes
    frame = pd.DataFrame(x.astype(np.float32), columns=columns)
    frame["label"] = noisy.astype(np.int64)
    path = folder / ("digits.csv" if kind == "digits" else f"mnist1d_{len(y)}.parquet")
    frame.to_csv(path, index=False) if kind == "digits" else frame.to_parquet(path, index=False)
    return path, flip


def timed(command: list[str]) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS in MB, stdout and user + system CPU seconds of one child process
    (on a loaded machine CPU seconds move far less with the load than wall time)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read().decode() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out, round(usage.ru_utime + usage.ru_stime, 1)


def f1(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flagged & truth).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4)}


EXTRA: tuple[str, ...] = ()  # --extra


def run_ours(path: Path, out: Path, truth: np.ndarray, *, extra: tuple[str, ...] = ()) -> dict:
    import pandas as pd

    wall, rss, text, cpu = timed([sys.executable, "-m", "trainground.cli", "diagnose", str(path), "--target", "label",
                             "--out", str(out), *extra, *EXTRA])
    inner = float(re.search(r"seconds: ([0-9.]+)", text).group(1))  # type: ignore[union-attr]
    table = pd.read_csv(out / "sample_issues.csv")
    flagged = np.zeros(len(truth), dtype=bool)
    flagged[table["index"].to_numpy()] = table["is_label_issue"].to_numpy(dtype=bool)
    return {"method": " ".join(["trainground diagnose", *extra]), "wall_s": round(wall, 2), "in_process_s": inner,
            "cpu_s": cpu,
            "peak_rss_mb": round(rss, 1), **f1(flagged, truth)}


def run_ours_single(path: Path, out: Path, truth: np.ndarray) -> dict:
    """Ours without the second pass (``--no-second-pass``): one training."""
    return run_ours(path, out, truth, extra=("--no-second-pass",))


def run_cleanlab(path: Path, out: Path, truth: np.ndarray) -> dict:
    import pandas as pd

    wall, rss, text, cpu = timed([sys.executable, __file__, "--child-cleanlab", str(path), "--flags", str(out)])
    inner = json.loads(text.strip().splitlines()[-1])["seconds"]
    flagged = pd.read_csv(out)["is_label_issue"].to_numpy(dtype=bool)
    return {"method": "cleanlab 5-fold find_label_issues", "wall_s": round(wall, 2), "in_process_s": round(inner, 2),
            "cpu_s": cpu,
            "peak_rss_mb": round(rss, 1), **f1(flagged, truth)}


def child_cleanlab(path: str, flags: str) -> None:
    """cleanlab's side, as a user would write it: 5-fold out-of-sample probabilities."""
    import pandas as pd
    import torch
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold

    from trainground.data import load_data
    from trainground.engine import FitConfig, fit
    from trainground.engine.evaluate import predict_logits
    from trainground.engine.rng import seed_everything
    from trainground.models import ModelConfig, build_model

    data = load_data(path, target="label")
    started = time.perf_counter()
    labels = data.labels.numpy()
    probs = np.zeros((len(data), data.num_classes), dtype=np.float32)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    for k, (train_pos, test_pos) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        seed_everything(k)
        train = data.subset(train_pos)
        model = build_model(ModelConfig(), input_shape=data.input_shape, num_classes=data.num_classes,
                            train_features=train.features)
        result = fit(model, train, config=FitConfig(val_fraction=0.0, seed=k))
        logits = predict_logits(result.model, data.features[torch.as_tensor(test_pos)])
        probs[test_pos] = torch.softmax(logits, dim=1).numpy()
        with open(f"{flags}.progress.jsonl", "a") as log:  # per-fold times, kept if a long run is stopped
            log.write(json.dumps({"fold": k, "seconds_since_start": time.perf_counter() - started}) + "\n")
    issues = find_label_issues(labels, probs, n_jobs=1)
    seconds = time.perf_counter() - started
    pd.DataFrame({"index": data.index.numpy(), "is_label_issue": issues}).to_csv(flags, index=False)
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["digits", "mnist1d"], default="digits")
    parser.add_argument("--n", type=int, default=200_000, help="MNIST-1D samples to generate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cleanlab", action="store_true")
    parser.add_argument("--single-pass", action="store_true", help="also run ours with --no-second-pass")
    parser.add_argument("--concurrent", action="store_true", help="start a repeat's processes at the same time")
    parser.add_argument("--extra", default="", help="more options for ours, e.g. '--epochs 2' (a quick check)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child-cleanlab", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--flags", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cleanlab:
        child_cleanlab(args.child_cleanlab, args.flags)
        return
    global EXTRA
    EXTRA = tuple(args.extra.split())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, truth = make_data(args.data, args.n, Path(tmp))
        for r in range(args.repeats):
            methods = [run_ours] if args.skip_cleanlab else [run_ours, run_cleanlab]
            methods += [run_ours_single] if args.single_pass else []
            order = methods if r % 2 == 0 else methods[::-1]

            def one(method, r=r):
                load = os.getloadavg()[0]
                row = {"repeat": r, "n": len(truth), **method(path, Path(tmp) / f"{method.__name__}_{r}", truth),
                       "load_1min_start": round(load, 1), "load_1min": round(os.getloadavg()[0], 1),
                       "concurrent": args.concurrent}
                print(json.dumps(row), flush=True)
                return row

            if args.concurrent:
                with ThreadPoolExecutor(len(order)) as pool:
                    rows += list(pool.map(one, order))
            else:
                rows += [one(method) for method in order]
    summary = {}
    if not args.skip_cleanlab:
        theirs = [r for r in rows if r["method"].startswith("cleanlab")]
        summary = {"cpus": os.cpu_count()}
        for name, key in (("trainground diagnose", ""), ("trainground diagnose --no-second-pass", "single_pass_")):
            ours = [r for r in rows if r["method"] == name]
            if ours:
                summary[f"{key}end_to_end_ratio"] = round(float(np.median([a["wall_s"] / b["wall_s"]
                                                                          for a, b in zip(ours, theirs)])), 3)
                summary[f"{key}in_process_ratio"] = round(float(np.median([a["in_process_s"] / b["in_process_s"]
                                                                          for a, b in zip(ours, theirs)])), 3)
                summary[f"{key}cpu_ratio"] = round(float(np.median([a["cpu_s"] / b["cpu_s"]
                                                                   for a, b in zip(ours, theirs)])), 3)
        print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"data": args.data, "runs": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
