"""Benchmark D before/after a change, on a loaded machine: two source trees in alternating processes.

Each worker process imports ``trainground`` from one tree (``PYTHONPATH``) and runs
``step_cost.measure`` (this tree's harness for both, so only the library differs): the plain
step, ``clip_grad_norm_`` and the Guard variants interleaved in rounds, thread CPU clock, one
thread. The driver alternates the trees (before, this, before, this, ...) ``--rounds`` times,
so both see the same load; a worker's ratios are per-round paired ratios against the plain
step of the same process (``step_cost.py``'s ``paired``). Reported: the median over workers.

``--same-process``: both libraries in one process instead (the baseline's ``trainground``
copied to a temporary folder as the package ``trainground_baseline``), every variant of both
trees interleaved in the same rounds, so a few per cent are visible on a loaded machine; the
baseline Guard gets the baseline's own ``GuardConfig`` with the same fields.

    git worktree add --detach /tmp/base <commit>     # or: git archive <commit> | tar -x -C /tmp/base
    OMP_NUM_THREADS=1 python benchmarks/step_cost_ab.py --baseline-src /tmp/base/src --rounds 6 \\
        --out benchmarks/results/step_cost_ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ab_trees

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def digits_batches(size: int = 64) -> list:
    """Standardised digits in whole batches of ``size`` (float32 inputs, int64 labels)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    d = load_digits()
    x = torch.as_tensor(StandardScaler().fit_transform(d.data), dtype=torch.float32)
    y = torch.as_tensor(d.target)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y) - size + 1, size)]


def worker(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    import step_cost

    torch.set_num_threads(1)
    batches = digits_batches()
    out = {}
    for name in args.models:
        rows = step_cost.measure(step_cost.MODELS[name], batches, rounds=args.worker_rounds, steps=args.steps,
                                 variants=args.variants, clock=time.thread_time_ns)
        out[name] = {v: {"paired": r["paired"], "median_ms": r["median_ms"]} for v, r in rows.items()}
    return out


def renamed_copy(src: Path, dest: Path, name: str = "trainground_baseline") -> None:
    """Copy ``src/trainground`` to ``dest/name`` with its absolute imports renamed (importable beside it)."""
    import re
    import shutil

    shutil.copytree(src / "trainground", dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (dest / name).rglob("*.py"):
        path.write_text(re.sub(r"\btrainground\b(?=[.\s])", name, path.read_text()))


def same_process(args: argparse.Namespace) -> dict:
    """Plain, clip and the Guard variants of both trees interleaved in one process (paired ratios)."""
    import dataclasses
    import importlib

    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(HERE))
    import step_cost

    scratch_dir = tempfile.TemporaryDirectory(prefix="step_cost_base_")  # removed when this function returns
    scratch = scratch_dir.name
    renamed_copy(args.baseline_src, Path(scratch))
    sys.path.insert(0, scratch)
    base = importlib.import_module("trainground_baseline.gradients")
    torch.set_num_threads(1)
    batches = digits_batches()
    out = {}
    for model_name in args.models:
        runs = {}
        before = [f"{v}@before" for v in args.variants if v in step_cost.GUARD_CONFIGS]
        # The order within a round may favour a position (the cache a variant inherits): --before-first swaps it.
        names = ["plain", *before, *args.variants] if args.before_first else ["plain", *args.variants, *before]
        for variant in names:
            torch.manual_seed(0)
            model = step_cost._mlp(step_cost.MODELS[model_name])
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            name, _, which = variant.partition("@")
            if which:
                # options the baseline does not know yet (added since) are left at its own behaviour
                known = {f.name for f in dataclasses.fields(base.GuardConfig)}
                config = base.GuardConfig(**{k: v for k, v in dataclasses.asdict(step_cost.GUARD_CONFIGS[name]).items()
                                             if k in known})
                guard = base.Guard(model, opt, config=config)

                def step(xb, yb, guard=guard, model=model):
                    guard.backward(F.cross_entropy(model(xb), yb), batch_size=len(yb))
                    guard.step()
            else:
                step = step_cost.make_step(variant, model, opt)
            runs[variant] = {"step": step, "k": 0, "rounds": []}
        for run in runs.values():
            for k in range(30):
                run["step"](*batches[k % len(batches)])
        for _ in range(args.worker_rounds):
            for run in runs.values():
                times = []
                for _ in range(args.steps):
                    xb, yb = batches[run["k"] % len(batches)]
                    run["k"] += 1
                    t0 = time.thread_time_ns()
                    run["step"](xb, yb)
                    times.append(time.thread_time_ns() - t0)
                run["rounds"].append(float(np.median(times)) / 1e6)
        plain = np.array(runs["plain"]["rounds"])
        out[model_name] = {v: {"paired": float(np.median(np.array(r["rounds"]) / plain)),
                               "paired_iqr": [float(q) for q in np.percentile(np.array(r["rounds"]) / plain, [25, 75])],
                               "median_ms": float(np.median(r["rounds"]))} for v, r in runs.items()}
    scratch_dir.cleanup()
    return out


def summarise(per_tree: dict[str, list[dict]]) -> dict:
    """Per tree, model and variant: median (and range) over workers of the paired ratio, and ms/step."""
    out: dict = {}
    for tree, workers in per_tree.items():
        for model in workers[0]:
            for variant in workers[0][model]:
                paired = [w[model][variant]["paired"] for w in workers]
                ms = [w[model][variant]["median_ms"] for w in workers]
                out.setdefault(tree, {}).setdefault(model, {})[variant] = {
                    "paired_median": float(np.median(paired)), "paired_min": float(min(paired)),
                    "paired_max": float(max(paired)), "median_ms": float(np.median(ms)), "workers": len(paired)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, default=None, help="src/ of the tree before the change")
    ap.add_argument("--rounds", type=int, default=6, help="worker processes per tree, alternating")
    ap.add_argument("--worker-rounds", type=int, default=10, help="interleaved rounds inside a worker")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant and round")
    ap.add_argument("--models", nargs="*", default=["mlp_84k", "mlp_1m"])
    ap.add_argument("--variants", nargs="*", default=["clipnorm1", "guard", "guard_no_trust"])
    ap.add_argument("--same-process", action="store_true", help="both trees in one process (see above)")
    ap.add_argument("--before-first", action="store_true", help="--same-process: the baseline's variants first in a round")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        args.worker.write_text(json.dumps(worker(args)))
        return
    if args.same_process:
        if args.baseline_src is None:
            ap.error("--same-process needs --baseline-src")
        load = [os.getloadavg()[0]]
        rows = same_process(args)
        load.append(os.getloadavg()[0])
        for model, variants in rows.items():
            for variant, r in variants.items():
                print(f"{model:8s} {variant:22s} {r['median_ms']:7.3f} ms  paired {r['paired']:.3f} "
                      f"[{r['paired_iqr'][0]:.3f}, {r['paired_iqr'][1]:.3f}]")
        if args.out is not None:
            record = {"same_process": rows, "args": {k: str(v) for k, v in vars(args).items()},
                      "clock": "thread CPU time, 1 thread", "load_average_1min_start_end": load,
                      "machine": "2 shared CPU cores, loaded by other jobs",
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "trees": {"before": str(args.baseline_src), "this": str(ROOT / "src")}}
            args.out.write_text(json.dumps(record, indent=1) + "\n")
            print(f"wrote {args.out}")
        return
    trees = ab_trees.trees(ROOT / "src", args.baseline_src)
    common = [f"--worker-rounds={args.worker_rounds}", f"--steps={args.steps}", "--models", *args.models,
              "--variants", *args.variants]
    per_tree, loads = ab_trees.alternate(__file__, trees, common, args.rounds)
    summary = summarise(per_tree)
    for tree, models in summary.items():
        for model, variants in models.items():
            for variant, s in variants.items():
                print(f"{tree:7s} {model:8s} {variant:15s} {s['median_ms']:7.3f} ms  paired {s['paired_median']:.3f} "
                      f"[{s['paired_min']:.3f}, {s['paired_max']:.3f}]")
    if args.out is not None:
        record = {"summary": summary, "raw": per_tree, "args": {k: str(v) for k, v in vars(args).items()},
                  "clock": "thread CPU time, 1 thread", "load_average_1min": loads,
                  "machine": "2 shared CPU cores, loaded by other jobs",
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "trees": {k: str(v) for k, v in trees.items()}}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
