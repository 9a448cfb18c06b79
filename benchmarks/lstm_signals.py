"""The specification's claim, measured: does the Guard's dynamic clipping make an LSTM converge faster?

The specification reports that dynamic-threshold clipping made an LSTM converge 2.1x faster than a
fixed threshold. This benchmark measures steps to a target validation accuracy and the final
validation accuracy of the built-in LSTM (``ModelConfig(name="lstm")``: 64 hidden, one layer) on two
signal tasks.

Protocol (fixed before any run):
  tasks   faults   fault type (12 classes) of trainground.data.faults.make_faults signals (1024
                   samples; frames of 32: 32 steps of 32 features); train 3000 signals (seed 100),
                   validation 1000 (seed 101, same domain); batch 64, 24 epochs = 1128 steps.
                   (Sized for the loaded machine: the first try, frames of 16 and 32 epochs, ran at
                   77 ms/step, 2 h for the sweep; stopped after one run and shortened.)
          mnist1d  MNIST-1D (builtin:mnist1d, 40 samples, frame 1: a 40-step sequence of scalars);
                   its own 4000 train / 1000 test rows (test = validation); batch 64, 24 epochs =
                   1512 steps.
  methods none      no clipping
          clip0.25, clip1, clip4
                    a fixed global-norm threshold (the same maths as torch.nn.utils.clip_grad_norm_;
                    checked below against the torch function on the task's own model and batches)
          guard     fit's default Guard (``guard=None``: GuardConfig() - spike skip, ZClip, trust region)
          All through trainground.fit: the same model init (torch.manual_seed(seed) before building),
          the same batches (FitConfig.seed = seed), the same validation set. The baselines are a Guard
          whose chain holds nothing (none) or only the fixed clip: the Guard always skips a step with a
          non-finite gradient, so a blow-up shows as skipped steps (counted), not as NaN weights.
  sweep   Adam lr in (3e-4, 1e-3, 3e-3) x seeds (0, 1, 2): 9 cells per method and task; the methods
          of a cell run one after the other (interleaved in time, so the load of the shared machine
          hits them alike); seed by seed, so a sweep cut short keeps every lr of the seeds it ran.
  eval    validation accuracy every 25 steps (and at the end) by a callback; nothing stops early.
  target  per task, 0.9 x the best final validation accuracy of the no-clip runs (computed from
          the no-clip runs only; 0.8 x reported too as a sensitivity check). Steps to target = the
          first evaluation at or above it.
  best fixed  the fixed threshold with the most cells reaching the target, then the fewest median
          steps (benchmarks/stability_arch.py's rule; chosen on these same runs, which favours it).
  ratios  "steps to target, best fixed / Guard" (> 1: the Guard is faster): (a) the geometric mean
          over the cells that both reach the target; (b) each method at its own best lr (most
          seeds reaching the target, then the fewest median steps, then the best mean final
          accuracy), the ratio of the medians.
  diverged  a non-finite batch loss, a skipped non-finite step, or a final validation loss above
          the initial one.
  check   the fixed clip of the Guard against torch.nn.utils.clip_grad_norm_ on each task's model
          and batches at a threshold that engages (clip_vs_torch in the results; ``--check-clip``).
  cost    seconds per optimizer step of each run without the evaluation time (loaded machine:
          only the ratios between methods, measured interleaved, mean anything).

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/lstm_signals.py \\
        --out benchmarks/results/lstm_signals.json
    python benchmarks/lstm_signals.py --table benchmarks/results/lstm_signals.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from stability_arch import (
    GUARDS,  # the Guard ablations of benchmark C (one component off each)
    speedup,  # benchmark C's ratio: the geometric mean over cells both solved
)
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from trainground import Callback, FitConfig, fit
from trainground.data.builtin import builtin_frame
from trainground.data.faults import make_faults
from trainground.gradients import Guard, GuardConfig
from trainground.models import ModelConfig, build_model

LRS = (3e-4, 1e-3, 3e-3)
SEEDS = (0, 1, 2)
CLIPS = (0.25, 1.0, 4.0)
EVAL_EVERY = 25
BATCH = 64
TARGET_SHARES = (0.9, 0.8)  # the first is the headline target
# The baselines: the Guard's chain reduced to nothing or to a fixed clip (see the docstring).
BARE = {"spike_z": None, "zscore": None, "trust_region": False}


def methods() -> dict[str, GuardConfig | None]:
    out: dict[str, GuardConfig | None] = {"none": GuardConfig(**BARE)}
    out.update({f"clip{c:g}": GuardConfig(**BARE, max_norm=c) for c in CLIPS})
    out["guard"] = None  # fit's default path: Guard(model, optimizer, config=GuardConfig())
    return out


def ablations() -> dict[str, GuardConfig | None]:
    """``--ablation``: the Guard with one component off (benchmark C's ``GUARDS``), to say which one decides."""
    return {"guard": None, **{k: v for k, v in GUARDS.items() if k != "guard"}}


# ------------------------------------------------------------------ data
def load_task(name: str) -> dict:
    if name == "faults":
        train, val = make_faults(3000, seed=100), make_faults(1000, seed=101)
        xtr, ytr = torch.from_numpy(train.signals).float(), torch.from_numpy(train.fault).long()
        xva, yva = torch.from_numpy(val.signals).float(), torch.from_numpy(val.fault).long()
        classes, epochs, frame = 12, 24, 32
    elif name == "mnist1d":
        frame = builtin_frame("mnist1d")  # 4000 train rows, then 1000 test rows
        x = torch.from_numpy(frame.drop(columns="label").to_numpy(np.float32))
        y = torch.from_numpy(frame["label"].to_numpy(np.int64))
        xtr, ytr, xva, yva = x[:4000], y[:4000], x[4000:], y[4000:]
        classes, epochs, frame = 10, 24, 1
    else:
        raise ValueError(f"unknown task {name!r}")
    return {"train": (xtr, ytr), "val": (xva, yva), "classes": classes, "epochs": epochs, "frame": frame}


def make_model(task: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    xtr = task["train"][0]
    return build_model(ModelConfig(name="lstm", frame=task["frame"]), input_shape=(xtr.shape[1],), num_classes=task["classes"],
                       train_features=xtr, kind="signal")


# ------------------------------------------------------------------ one run
@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    was = model.training
    model.eval()
    logits = torch.cat([model(b) for b in x.split(500)])
    model.train(was)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


class Watch(Callback):
    """Validation accuracy every ``EVAL_EVERY`` steps, non-finite losses, the Guard's skips."""

    def __init__(self, val: tuple[Tensor, Tensor]) -> None:
        self.val, self.curve, self.nonfinite, self.eval_seconds = val, [], 0, 0.0
        self.skipped, self.clipped, self.scales = 0, 0, []

    def on_after_forward(self, state) -> None:
        self.nonfinite += not math.isfinite(float(state.loss))

    def on_batch_end(self, state) -> None:
        stats = state.guard.last_stats
        self.skipped += float(stats["skipped"]) > 0
        self.clipped += float(stats["clip_threshold"]) < float(stats["grad_norm"])
        self.scales.append(float(stats["update_scale"]))  # the trust region's step scale (1: untouched)
        if state.step % EVAL_EVERY == 0:
            started = time.perf_counter()
            self.curve.append((state.step, *evaluate(state.model, *self.val)))
            self.eval_seconds += time.perf_counter() - started


def run(task: dict, method: str, guard: GuardConfig | None, lr: float, seed: int) -> dict:
    model = make_model(task, seed)
    init_loss, init_acc = evaluate(model, *task["val"])
    watch = Watch(task["val"])
    config = FitConfig(epochs=task["epochs"], batch_size=BATCH, lr=lr, seed=seed, device="cpu")
    started = time.perf_counter()
    result = fit(model, TensorDataset(*task["train"]), val_data=TensorDataset(*task["val"]), config=config,
                 callbacks=[watch], guard=copy.deepcopy(guard))
    seconds = time.perf_counter() - started - watch.eval_seconds
    final_loss, final_acc = evaluate(model, *task["val"])
    if not watch.curve or watch.curve[-1][0] != result.steps:
        watch.curve.append((result.steps, final_loss, final_acc))
    diverged = watch.nonfinite > 0 or not math.isfinite(final_loss) or final_loss > init_loss
    return {"method": method, "lr": lr, "seed": seed, "steps": result.steps, "init_loss": init_loss,
            "init_accuracy": init_acc, "final_loss": final_loss if math.isfinite(final_loss) else None,
            "final_accuracy": final_acc, "best_accuracy": max(a for _, _, a in watch.curve),
            "nonfinite_losses": watch.nonfinite, "skipped_steps": watch.skipped, "clipped_steps": watch.clipped,
            "diverged": bool(diverged), "seconds_per_step": seconds / max(result.steps, 1),
            "min_update_scale": min(watch.scales), "median_update_scale": statistics.median(watch.scales),
            "steps_below_half_scale": sum(x < 0.5 for x in watch.scales),
            "curve": [(s, round(lo, 5), round(a, 5)) for s, lo, a in watch.curve]}


def clip_matches_torch(task: dict, steps: int = 20, max_norm: float = 0.05) -> dict:
    """Guard(max_norm) vs torch's clip_grad_norm_(max_norm), same model, batches and Adam steps: the
    largest weight difference after ``steps`` steps, and in how many of them the clip engaged (0.05 is
    below both tasks' typical norms, so it does: a check at a threshold never reached would be vacuous)."""
    models = [make_model(task, 0) for _ in range(2)]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    guard = Guard(models[0], opts[0], config=GuardConfig(**BARE, max_norm=max_norm))
    gen = torch.Generator().manual_seed(0)
    x, y = task["train"]
    engaged = 0
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=gen)
        guard.backward(F.cross_entropy(models[0](x[idx]), y[idx]), batch_size=BATCH)
        guard.step()
        opts[1].zero_grad()
        F.cross_entropy(models[1](x[idx]), y[idx]).backward()
        engaged += float(torch.nn.utils.clip_grad_norm_(models[1].parameters(), max_norm)) > max_norm
        opts[1].step()
    diff = max(float((a - b).abs().max()) for a, b in zip(models[0].parameters(), models[1].parameters()))
    return {"max_norm": max_norm, "steps": steps, "steps_clipped": engaged, "max_weight_diff": diff}


# ------------------------------------------------------------------ summary
def steps_to(r: dict, target: float) -> int | None:
    return next((s for s, _, a in r["curve"] if a >= target), None)


def at_target(runs: list[dict], target: float) -> list[dict]:
    """The runs as stability_arch's summaries read them: solved / steps_to_target."""
    out = []
    for r in runs:
        at = steps_to(r, target)
        out.append({**r, "solved": at is not None and not r["diverged"], "steps_to_target": at})
    return out


def rank(runs: list[dict]) -> tuple[int, float]:
    """Sort key: most runs reaching the target, then the fewest median steps."""
    steps = [r["steps_to_target"] for r in runs if r["solved"]]
    return -len(steps), statistics.median(steps) if steps else math.inf


def best_lr(runs: list[dict]) -> tuple[float, list[dict]]:
    """The lr whose seeds reach the target most often, then fastest, then with the best mean final accuracy."""
    by_lr = {lr: [r for r in runs if r["lr"] == lr] for lr in dict.fromkeys(r["lr"] for r in runs)}
    lr = min(by_lr, key=lambda k: (*rank(by_lr[k]), -statistics.mean(r["final_accuracy"] for r in by_lr[k])))
    return lr, by_lr[lr]


def summarize_task(runs: list[dict]) -> dict:
    by_method = {m: [r for r in runs if r["method"] == m] for m in dict.fromkeys(r["method"] for r in runs)}
    best_none = max(r["final_accuracy"] for r in by_method["none"])
    out: dict = {"best_final_accuracy_none": best_none, "targets": {}}
    for share in TARGET_SHARES:
        target = share * best_none
        solved = {m: at_target(rs, target) for m, rs in by_method.items()}
        clips = [m for m in solved if m.startswith("clip")]
        best = min(clips, key=lambda m: rank(solved[m]))
        rows = {}
        for m, rs in solved.items():
            steps = [r["steps_to_target"] for r in rs if r["solved"]]
            lr, at_lr = best_lr(rs)
            lr_steps = [r["steps_to_target"] for r in at_lr if r["solved"]]
            rows[m] = {
                "reached": len(steps), "runs": len(rs), "diverged": sum(r["diverged"] for r in rs),
                "median_steps": statistics.median(steps) if steps else None,
                "final_accuracy_mean": statistics.mean(r["final_accuracy"] for r in rs),
                "final_accuracy_best_lr_mean": statistics.mean(r["final_accuracy"] for r in at_lr),
                "best_lr": lr, "best_lr_reached": len(lr_steps), "best_lr_runs": len(at_lr),
                "best_lr_median_steps": statistics.median(lr_steps) if lr_steps else None,
                "seconds_per_step_median": statistics.median(r["seconds_per_step"] for r in rs),
                "never_reached": [(r["lr"], r["seed"]) for r in rs if not r["solved"]],
            }
        g, b = rows["guard"], rows[best]
        cells, n = speedup(solved["guard"], solved[best])
        out["targets"][f"{share:g}"] = {
            "target_accuracy": target, "best_fixed": best, "methods": rows,
            "ratio_best_fixed_over_guard_cells": cells, "cells_both_reached": n,
            "ratio_best_fixed_over_guard_at_best_lr": (b["best_lr_median_steps"] / g["best_lr_median_steps"]
                                                       if b["best_lr_median_steps"] and g["best_lr_median_steps"]
                                                       else None),
        }
    none_cost = statistics.median(r["seconds_per_step"] for r in by_method["none"])
    out["cost_vs_none"] = {m: statistics.median(r["seconds_per_step"] for r in rs) / none_cost
                           for m, rs in by_method.items()}
    return out


def table(path: str) -> None:
    data = json.loads(Path(path).read_text())
    for task, summ in data["summary"].items():
        for share, t in summ["targets"].items():
            print(f"\n{task}: target {t['target_accuracy']:.3f} = {share} x best no-clip final accuracy "
                  f"{summ['best_final_accuracy_none']:.3f}; best fixed = {t['best_fixed']}")
            print("| method | reached | diverged | median steps | best lr | reached at best lr | median steps "
                  "at best lr | final acc (all) | final acc (best lr) | s/step vs none |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for m, r in t["methods"].items():
                def f(v, fmt="{:.0f}"):
                    return "-" if v is None else fmt.format(v)
                print(f"| {m} | {r['reached']}/{r['runs']} | {r['diverged']} | {f(r['median_steps'])} | {r['best_lr']:g} "
                      f"| {r['best_lr_reached']}/{r['best_lr_runs']} | {f(r['best_lr_median_steps'])} | {r['final_accuracy_mean']:.3f} "
                      f"| {r['final_accuracy_best_lr_mean']:.3f} | {summ['cost_vs_none'][m]:.2f} |")
            c = t["ratio_best_fixed_over_guard_cells"]
            a = t["ratio_best_fixed_over_guard_at_best_lr"]
            print(f"steps to target, best fixed / Guard: {'-' if c is None else f'{c:.2f}'}x over "
                  f"{t['cells_both_reached']} cells both reached; {'-' if a is None else f'{a:.2f}'}x at each "
                  "one's best lr")


def merge(paths: list[str], out: str) -> None:
    """One results file from per-task sweeps; a seed whose cells are not all done is left out."""
    res: dict = {}
    for path in paths:
        part = json.loads(Path(path).read_text())
        if not res:
            res = {**{k: v for k, v in part.items() if k != "clip_vs_torch_max_diff"}, "runs": {}, "summary": {}, "clip_vs_torch": {}}
        for name, runs in part["runs"].items():
            per_seed = len(LRS) * len(methods())
            done = [s for s in dict.fromkeys(r["seed"] for r in runs) if sum(r["seed"] == s for r in runs) == per_seed]
            runs = [r for r in runs if r["seed"] in done]
            res["runs"][name] = runs
            res["clip_vs_torch"][name] = part.get("clip_vs_torch", {}).get(name)
            res["summary"][name] = {"seeds": done, **summarize_task(runs)}
    res["seeds"] = sorted({s for v in res["summary"].values() for s in v["seeds"]})
    Path(out).write_text(json.dumps(res, indent=1))
    table(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="*", default=["faults", "mnist1d"])
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", default=None, metavar="JSON")
    ap.add_argument("--ablation", action="store_true",
                    help="run the Guard and its ablations (one component off) instead of the clipping methods")
    ap.add_argument("--lrs", nargs="*", type=float, default=list(LRS))
    ap.add_argument("--check-clip", action="store_true", help="only rerun the clip_grad_norm_ check into --out")
    ap.add_argument("--merge", nargs="*", default=None, metavar="JSON",
                    help="summarise these (possibly partial) sweeps into --out: complete seeds only")
    args = ap.parse_args()
    if args.table:
        return table(args.table)
    if args.merge is not None:
        return merge(args.merge, args.out)
    if args.check_clip:  # rerun the equivalence check alone and store it in --out
        torch.set_num_threads(1)
        res = json.loads(Path(args.out).read_text())
        res["clip_vs_torch"] = {name: clip_matches_torch(load_task(name)) for name in args.tasks}
        res.pop("clip_vs_torch_max_diff", None)
        Path(args.out).write_text(json.dumps(res, indent=1))
        return print(res["clip_vs_torch"])
    torch.set_num_threads(1)
    res: dict = {"protocol": __doc__.split("Usage:")[0].strip(), "lrs": list(LRS), "seeds": args.seeds,
                 "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread; 2 CPU cores shared "
                            "with other jobs (loaded)", "runs": {}, "summary": {}, "clip_vs_torch": {}}
    for name in args.tasks:
        task = load_task(name)
        res["clip_vs_torch"][name] = clip_matches_torch(task)
        runs = res["runs"][name] = []
        for seed in args.seeds:  # seed-major: a sweep cut short still has every lr of the seeds it ran
            for lr in args.lrs:
                for method, guard in (ablations() if args.ablation else methods()).items():
                    r = run(task, method, guard, lr, seed)
                    runs.append(r)
                    print(f"[{name} lr {lr:g} seed {seed} {method:8s}] final acc {r['final_accuracy']:.3f} "
                          f"best {r['best_accuracy']:.3f} skipped {r['skipped_steps']} clipped {r['clipped_steps']}"
                          f" {r['seconds_per_step'] * 1e3:.1f} ms/step", flush=True)
                    if args.out:  # partial results survive an interrupted sweep
                        Path(args.out).write_text(json.dumps(res, indent=1))
        if not args.ablation:
            res["summary"][name] = summarize_task(runs)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
    if args.out:
        print(f"wrote {args.out}")
        if not args.ablation:
            table(args.out)


if __name__ == "__main__":
    main()
