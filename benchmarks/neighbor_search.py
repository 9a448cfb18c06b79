"""Benchmark: one representation search at scale, this tree's against another version of
``diagnosis/neighbors.py``, each in its own process (time, peak memory, recall against exact search).

The points: the penultimate layer (256 units) of the default MLP 256-256 after 3 epochs of
Adam (batch 64, lr 1e-3, seed 0) on a table with a ``label`` column (e.g. the 200,000-row
MNIST-1D Parquet of ``end_to_end.py``), standardised features; saved to ``--cache`` and
reused. The search: ``nearest_neighbors(points, 10, metric="cosine")`` as the label check
runs it. ``--no-pca`` sets ``PCA_MIN_DIM`` above the width, so the inverted file indexes
all the columns (the search before the principal components). ``--module FILE`` runs the
search of another version of ``diagnosis/neighbors.py`` (e.g. one copied out of git) on the
same points, so two versions compare in the same conditions. Recall: the share of the exact 10 nearest neighbours (all points, cosine)
of 1,000 random queries. Seconds: wall and this process's CPU seconds (on a loaded machine
the CPU seconds are the figure to compare).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/neighbor_search.py DATA.parquet --cache emb.npy
    git show 1a0989d:src/trainground/diagnosis/neighbors.py > /tmp/cells.py   # the scan by cells (reverted)
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/neighbor_search.py DATA.parquet --cache emb.npy --module /tmp/cells.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def memory() -> dict[str, int]:
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status
                if line.startswith(("VmRSS", "VmHWM"))}


def representation(data: Path, cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache).astype(np.float32, copy=False)
    import pandas as pd

    frame = pd.read_parquet(data)
    x = torch.tensor(frame.drop(columns="label").to_numpy(np.float32))
    y = torch.tensor(frame["label"].to_numpy())
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU())
    head = torch.nn.Linear(256, int(y.max()) + 1)
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], 1e-3)
    for _ in range(3):
        for batch in torch.randperm(len(x)).split(64):
            loss = torch.nn.functional.cross_entropy(head(body(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        points = body(x).numpy()
    np.save(cache, points)
    return points


def exact_truth(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    unit = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    sims = unit[queries] @ unit.T
    sims[np.arange(len(queries)), queries] = -np.inf
    return np.argpartition(-sims, k, axis=1)[:, :k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cache", type=Path, required=True, help="the representation, .npy (made once)")
    parser.add_argument("--no-pca", action="store_true", help="index all the columns (the search before)")
    parser.add_argument("--module", type=Path, default=None, help="another neighbors.py to run instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.module is None:
        from trainground.diagnosis import neighbors
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("other_neighbors", args.module)
        neighbors = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(neighbors)  # type: ignore[union-attr]
    if args.no_pca:
        neighbors.PCA_MIN_DIM = 10**9
    points = representation(args.data, args.cache)
    before = memory()
    info: dict = {}
    started, cpu = time.perf_counter(), time.process_time()
    _, found = neighbors.nearest_neighbors(points, 10, metric="cosine", info=info)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = memory()  # before the exact reference below, whose 1,000 x N block would count
    queries = np.random.default_rng(1).choice(len(points), 1000, replace=False)
    truth = exact_truth(points, queries, 10)
    recall = float(np.mean([len(set(found[q]) & set(t)) / 10 for q, t in zip(queries, truth)]))
    print(json.dumps({"module": str(args.module or "this tree"), "pca": not args.no_pca, "n": len(points), "dim": points.shape[1],
                      "s": round(seconds, 1), "cpu_s": round(cpu, 1),
                      "search_peak_over_before_mb": after["VmHWM"] - before["VmRSS"], "recall": round(recall, 4),
                      "index": info}))


if __name__ == "__main__":
    main()
