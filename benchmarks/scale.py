"""Benchmark I (scale): the one-run label diagnosis from recorded learning dynamics, at
10k, 100k and 1M samples.

What it times is everything after training: the per-sample records of a 10-epoch run
(``samples.parquet``, one row per sample per epoch), the early-learning average of the class
probabilities and the learned representation go through the label check (confident
learning on the early-learning / neighbour vote, learning-curve summaries) and out to
``sample_issues.csv``. The records are generated with a known noise pattern (20 % symmetric
flips) so precision and recall are measurable; generation is not timed.

The generator, per sample with true class c: a difficulty d ~ U(0, 1); the early-learning
probabilities are a softmax of logits N(0, 1) plus a bump of 2 + 3 (1 - d) on c; the
embedding is the class centre plus N(0, 1.5^2) noise in 32 dimensions; the per-epoch margin
of the given label rises over the epochs for clean samples and stays negative until late
epochs (memorisation) for flipped ones.

    python benchmarks/scale.py --sizes 10000 100000 1000000 --out benchmarks/results/scale.json

Each size runs in its own subprocess, so the peak memory (ru_maxrss) is that size's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = 100
EPOCHS = 10
DIM = 32
NOISE = 0.2


def generate(n: int, seed: int, folder: Path) -> dict:
    """Write the records of a 10-epoch run to ``folder/samples.parquet`` and return the
    in-memory evidence (labels, early-learning probabilities, embeddings, truth)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    true = rng.integers(0, CLASSES, n)
    flip = rng.random(n) < NOISE
    labels = true.copy()
    labels[flip] = (true[flip] + rng.integers(1, CLASSES, flip.sum())) % CLASSES
    difficulty = rng.random(n).astype(np.float32)
    probs = np.empty((n, CLASSES), dtype=np.float32)
    for lo in range(0, n, 100_000):  # chunks keep the generator's own memory small
        hi = min(n, lo + 100_000)
        logits = rng.standard_normal((hi - lo, CLASSES), dtype=np.float32)
        logits[np.arange(hi - lo), true[lo:hi]] += 2.0 + 3.0 * (1.0 - difficulty[lo:hi])
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        probs[lo:hi] = logits / logits.sum(axis=1, keepdims=True)
    centres = rng.standard_normal((CLASSES, DIM), dtype=np.float32) * 3.0
    embeddings = centres[true] + 1.5 * rng.standard_normal((n, DIM), dtype=np.float32)
    samples = folder / "samples.parquet"
    samples.mkdir(parents=True)
    for epoch in range(EPOCHS):
        progress = (epoch + 1) / EPOCHS
        clean_margin = 4.0 * progress - 2.0 * difficulty
        noisy_margin = np.where(progress > 0.7, 6.0 * (progress - 0.7), -1.5) - difficulty
        margin = np.where(flip, noisy_margin, clean_margin) + 0.5 * rng.standard_normal(n, dtype=np.float32)
        prob = 1.0 / (1.0 + np.exp(-margin))
        frame = pd.DataFrame({
            "index": np.arange(n, dtype=np.int64), "epoch": np.full(n, epoch, dtype=np.int32),
            "split": np.zeros(n, dtype=np.int8), "loss": (-np.log(np.clip(prob, 1e-7, 1))).astype(np.float32),
            "margin": margin.astype(np.float32), "prob_given": prob.astype(np.float32),
            "predicted": np.where(margin > 0, labels, true).astype(np.int32),
        })
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), samples / f"part-{epoch:06d}.parquet")
    return {"labels": labels, "probs": probs, "embeddings": embeddings, "flip": flip}


def run_one(n: int, seed: int) -> dict:
    """Generate (untimed), then diagnose from the records (timed) in this process."""
    import torch

    from trainground.data.dataset import IndexedDataset
    from trainground.data.labels import LabelEncoder
    from trainground.diagnosis import Evidence, run_checks
    from trainground.diagnosis.neighbors import neighbor_search_method
    from trainground.diagnosis.sample_issues import sample_issues_table
    from trainground.monitors.samples import read_samples

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = generate(n, seed, folder)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        records = read_samples(folder / "samples.parquet")
        read_s = time.perf_counter() - start
        train = IndexedDataset(
            features=torch.zeros(n, 1), labels=torch.as_tensor(truth["labels"]), index=torch.arange(n),
            encoder=LabelEncoder(tuple(range(CLASSES))), kind="table", name="generated",
        )
        evidence = Evidence(train=train, samples=records, pred_probs=truth["probs"], embeddings=truth["embeddings"],
                            extra={"early_learning_epoch": 5})
        results, _ = run_checks(evidence, ["label_issues"])
        check_s = time.perf_counter() - start - read_s
        table = sample_issues_table(results, train)
        table.to_csv(folder / "sample_issues.csv", index=False)
        total_s = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        flagged = table["is_label_issue"].to_numpy()
    flip = truth["flip"]
    tp = int((flagged & flip).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(flip.sum()), 1)
    return {
        "n": n, "classes": CLASSES, "epochs": EPOCHS, "seed": seed, "seconds": round(total_s, 2),
        "read_seconds": round(read_s, 2), "check_seconds": round(check_s, 2),
        "peak_rss_mb": round(peak_mb, 1), "rss_before_mb": round(rss_before / 1024, 1),
        "neighbor_search": neighbor_search_method(n), "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.seed)))
        return
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"records": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
