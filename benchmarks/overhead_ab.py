"""Per-step overhead of the integrations, before and after a change, on a loaded machine.

Two loops, each timed against its own bare version (process CPU time per training step,
validation included, the finish with its checks and report excluded):

  lightning   a Lightning fit (own_training.py's recipe: digits, MLP 256-256, Adam 1e-3, batch 64,
              10 epochs of 21 steps): bare, bare with Lightning's own ``gradient_clip_val=1.0``
              (``bare-clip``: the second baseline, a user who clips), and with
              ``TraingroundCallback()`` at its defaults (monitors, per-sample records, features,
              the gradient chain); the callback's ratio is given over both baselines.
  plain       an ordinary DataLoader loop over the same data and model: bare (``loss.backward()``,
              ``optimizer.step()``), the Guard alone (``guard.backward``/``guard.step``, default
              ``GuardConfig()``), and ``Watch`` (the Guard plus the session: monitors, records,
              features).

Within one process the variants run interleaved (``--repeats`` times, after one untimed run of
each); the ratio of a repeat is each variant over the bare loop of the same repeat. The driver
alternates processes between two source trees (``--baseline-src``, the tree before a change, and
this tree's ``src``), ``--rounds`` times each, so both see the same machine load:

    git worktree add --detach /tmp/base <commit>
    OMP_NUM_THREADS=1 python benchmarks/overhead_ab.py --baseline-src /tmp/base/src --rounds 3 --repeats 5 \\
        --out benchmarks/results/overhead_ab.json

``--hidden 1024 1024`` times a wider MLP (a ~12 ms step) instead of the benchmark's model;
``--model cnn`` the built-in SmallCNN (channels 32-64, ~20k parameters) on the digits as 16x16
images (each pixel repeated 2x2), a step of ~10-20 ms: the second row, beside the MLP's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ab_trees

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def plain_loop(x, y, train_pos, val_pos, model, mode: str, epochs: int) -> tuple[float, int]:
    """CPU seconds and steps of ``epochs`` epochs of a DataLoader loop: ``bare``, ``guard`` or ``watch``."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset, TensorDataset

    from trainground.data import WithIndex
    from trainground.gradients import Guard, GuardConfig
    from trainground.integrations import SessionConfig, Watch

    data = TensorDataset(x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train, val = Subset(data, train_pos.tolist()), Subset(data, val_pos.tolist())
    watch = guard = None
    if mode == "watch":
        watch = Watch(model, optimizer, train, val, config=SessionConfig(patience=None, report=False))
        train_data, val_data = watch.train_data, watch.val_data
    else:
        train_data, val_data = WithIndex(train), WithIndex(val, offset=len(train_pos))
        guard = Guard(model, optimizer, config=GuardConfig()) if mode == "guard" else None
    loader = DataLoader(train_data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val_data, batch_size=1024)
    steps, c0 = 0, time.process_time()
    per_epoch, mark = [], c0
    for _ in range(epochs):
        model.train()
        for index, xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if watch is not None:
                watch.backward(loss, index=index, logits=logits, labels=yb)
                watch.step()
            elif guard is not None:
                guard.backward(loss, batch_size=len(yb))
                guard.step()
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            steps += 1
        model.eval()
        with torch.no_grad():
            for index, xb, yb in val_loader:
                logits = model(xb)
                if watch is not None:
                    watch.record_val(index, logits, yb)
        if watch is not None:
            watch.end_epoch()
        per_epoch.append(time.process_time() - mark)
        mark = time.process_time()
    seconds = time.process_time() - c0
    if watch is not None:
        watch.finish()
    return seconds, steps, per_epoch


def worker(args) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    import own_training as ot
    from label_errors import ANCHORS, load_anchor

    from trainground.data import stratified_split

    common = load_anchor("common", ANCHORS)
    common.setup_torch(1)
    x_np, _, y_np, _ = common.load_dataset("digits")
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    if args.model == "cnn":
        x = ot.digit_images(x)
    train_pos, val_pos = stratified_split(y_np, fraction=0.1, seed=0)
    hidden = tuple(args.hidden) if args.hidden else None
    variants = {"lightning": ["bare", "bare-clip", "callback"], "plain": ["bare", "guard", "watch"]}
    runs: dict = {part: {v: [] for v in variants[part]} for part in args.parts}
    epochs: dict = {part: {v: [] for v in variants[part]} for part in args.parts}  # per repeat: CPU s per epoch
    for repeat in range(-1, args.repeats):
        for part in args.parts:
            for name in variants[part]:
                model = ot._model(x, train_pos, 0, hidden)
                if part == "lightning":
                    options = {"stop_early": False, **({"gradient_clip_val": 1.0} if name == "bare-clip" else {})}
                    _, timer, _ = ot.route_lightning(x, y, 0, model, train_pos, val_pos, callback=name == "callback",
                                                     epochs=args.epochs, options=options)
                    seconds, steps, per_epoch = timer.cpu_seconds, timer.steps, timer.epoch_cpu
                else:
                    seconds, steps, per_epoch = plain_loop(x, y, train_pos, val_pos, model, name, args.epochs)
                if repeat >= 0:
                    runs[part][name].append(seconds / steps)
                    epochs[part][name].append([t / (steps / args.epochs) for t in per_epoch])
    return {"per_step": runs, "per_epoch": epochs}


def epoch_minima(workers: list[dict], part: str, name: str) -> float:
    """Seconds per step of a fit built from each epoch's minimum over every repeat of the tree:
    epoch e of every repeat does the same work (the same steps, windows, flushes), so its
    minimum is that work with the least of the machine's load on it, and the rare costly
    epochs (a representation window, a snapshot) stay in the sum."""
    fits = np.array([fit for w in workers for fit in w["per_epoch"][part][name]])  # [repeats, epochs]
    return float(fits.min(axis=0).mean())


def summarise(per_tree: dict[str, list[dict]]) -> dict:
    """Per tree, part and variant: median µs/step and the per-repeat ratio over the bare loop;
    and the ratio of the epoch-minima fits (:func:`epoch_minima`), steadier under load."""
    out: dict = {}
    for tree, all_workers in per_tree.items():
        workers = [w["per_step"] for w in all_workers]
        for part in workers[0]:
            for name in workers[0][part]:
                times = np.concatenate([w[part][name] for w in workers])
                bare = np.concatenate([w[part]["bare"] for w in workers])
                ratio = times / bare
                entry = out.setdefault(tree, {}).setdefault(part, {})[name] = {
                    "us_per_step": float(np.median(times) * 1e6),
                    "added_us_per_step": float(np.median(times - bare) * 1e6),
                    "ratio_median": float(np.median(ratio)),
                    "ratio_iqr": [float(np.percentile(ratio, 25)), float(np.percentile(ratio, 75))],
                    "repeats": len(ratio),
                    "epoch_minima_us_per_step": epoch_minima(all_workers, part, name) * 1e6,
                    "epoch_minima_ratio": epoch_minima(all_workers, part, name) / epoch_minima(all_workers, part, "bare"),
                }
                if name == "callback" and "bare-clip" in workers[0][part]:
                    entry["epoch_minima_ratio_over_clip"] = (epoch_minima(all_workers, part, name)
                                                             / epoch_minima(all_workers, part, "bare-clip"))
                    # the second baseline: bare Lightning with its own gradient_clip_val (the
                    # callback's chain clips too)
                    clip = times / np.concatenate([w[part]["bare-clip"] for w in workers])
                    entry["ratio_over_clip_median"] = float(np.median(clip))
                    entry["ratio_over_clip_iqr"] = [float(np.percentile(clip, 25)), float(np.percentile(clip, 75))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, default=None, help="src/ of the tree before the change")
    ap.add_argument("--rounds", type=int, default=3, help="processes per tree, alternating")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per process")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="MLP widths (default 256 256)")
    ap.add_argument("--parts", nargs="*", default=["lightning", "plain"])
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="cnn: SmallCNN on 16x16 digit images")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        args.worker.write_text(json.dumps(worker(args)))
        return
    trees = ab_trees.trees(ROOT / "src", args.baseline_src)
    common = [f"--repeats={args.repeats}", f"--epochs={args.epochs}", f"--model={args.model}", "--parts", *args.parts]
    if args.hidden:
        common += ["--hidden", *map(str, args.hidden)]
    per_tree, _ = ab_trees.alternate(__file__, trees, common, args.rounds, quiet=True)
    summary = summarise(per_tree)
    for tree, parts in summary.items():
        for part, variants in parts.items():
            for name, s in variants.items():
                print(f"{tree:7s} {part:9s} {name:9s} epoch minima {s['epoch_minima_us_per_step']:7.0f} us/step "
                      f"x{s['epoch_minima_ratio']:.3f}"
                      + (f" (over bare-clip x{s['epoch_minima_ratio_over_clip']:.3f})"
                         if "epoch_minima_ratio_over_clip" in s else "") + " | "
                      f"{s['us_per_step']:8.0f} us/step  +{s['added_us_per_step']:6.0f} "
                      f"ratio {s['ratio_median']:.3f} [{s['ratio_iqr'][0]:.3f}, {s['ratio_iqr'][1]:.3f}]"
                      + (f"  over bare-clip {s['ratio_over_clip_median']:.3f} [{s['ratio_over_clip_iqr'][0]:.3f}, "
                         f"{s['ratio_over_clip_iqr'][1]:.3f}]" if "ratio_over_clip_median" in s else ""))
    if args.out is not None:
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        key = "cnn_16x16_32x64" if args.model == "cnn" else "mlp_" + "x".join(map(str, args.hidden or [256, 256]))
        # raw: per tree and worker, CPU s per step of each repeat and of each epoch of each repeat
        previous[key] = {"summary": summary, "raw": per_tree, "rounds": args.rounds,
                         "repeats": args.repeats, "epochs": args.epochs, "clock": "process CPU time",
                         "machine": "2 shared CPU cores, loaded by other jobs",
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "trees": {k: str(v) for k, v in trees.items()}}
        args.out.write_text(json.dumps(previous, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
