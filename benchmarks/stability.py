"""Benchmark C (training stability): the Guard side by side with the anchor clippers.

Protocol = ../shared/anchors/bench_c_stability.py (imported from there: same data, split,
model, seeds, batch schedule, poisoned batch, evaluation and summary): digits with clean
labels, MLP 64-256-256-10, batch 64, 20 epochs (460 steps), seeds 0-2, SGD momentum 0.9 with
lr = geomspace(0.01, 3, 8) and Adam with lr = geomspace(1e-3, 1, 8), a poisoned batch at step
230. Methods: none, torch clip_grad_norm_(1.0), AutoClip p10 global, ZClip defaults (the
anchors' own wrappers), and the Guard with its default config (plus ablations: without the
secant trust region, and the trust region alone).

Usage:
    .venv/bin/python benchmarks/stability.py --threads 1 --out benchmarks/results_stability.json
    .venv/bin/python benchmarks/stability.py --methods guard --seeds 0 --poison-modes scale_wrong   # quick look
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ANCHORS = Path(__file__).resolve().parents[1].parent.parent / "shared" / "anchors"
for candidate in (ANCHORS, Path("/work/shared/anchors")):
    if (candidate / "bench_c_stability.py").exists():
        sys.path.insert(0, str(candidate))
        break
import bench_c_stability as B
import common as C

from trainground.gradients import Guard, GuardConfig, flat_buffer

GUARDS = {
    "guard": GuardConfig(),
    "guard_no_trust": GuardConfig(trust_region=False),
    # issue 15, fifth pass: ZClip's EMA follows a lasting level shift (gradients/zscore.py FOLLOW_FRACTION)
    "guard_follow": GuardConfig(zscore_follow_level_shift=True),  # the default since that pass
    "guard_zclip_published": GuardConfig(zscore_follow_level_shift=False),  # ZClip's EMA fed the clipped norm
    "guard_p8": GuardConfig(trust_rise_overshoot=True),  # secant principle 8 (issue 15, third pass)
    "guard_every2": GuardConfig(trust_every=2),
    "guard_trust_only": GuardConfig(spike_z=None, percentile=None, zscore=None),
    # issue 17, the sampled secant: on this 85k MLP the Guard keeps a flat gradient buffer and reads
    # every element (below flat_buffer.SAMPLE_MIN_NUMEL). To check the 1-in-8 sample where it is
    # hardest (~10k sampled elements instead of the 1M model's ~130k), these two force the per-tensor
    # layout, whole (the layout's own rounding) and sampled (GuardConfig.trust_sample=8).
    "guard_per_tensor": GuardConfig(trust_sample=1),
    "guard_sampled_forced": GuardConfig(trust_sample=8),
    "guard_sampled": GuardConfig(trust_sample=8),  # = the default; with --hidden 1024 the sample applies
    "guard_whole": GuardConfig(trust_sample=1),  # every element read (the default before issue 17's sample)
}
# method -> (flat_buffer.SMALL_TENSOR, flat_buffer.SAMPLE_MIN_NUMEL) while it runs
FORCED_LAYOUT = {"guard_per_tensor": (0, 0), "guard_sampled_forced": (0, 0)}


@contextlib.contextmanager
def forced_layout(name: str):
    """Set the Guard's layout thresholds for method ``name`` (FORCED_LAYOUT), restored afterwards."""
    if name not in FORCED_LAYOUT:
        yield
        return
    saved = flat_buffer.SMALL_TENSOR, flat_buffer.SAMPLE_MIN_NUMEL
    flat_buffer.SMALL_TENSOR, flat_buffer.SAMPLE_MIN_NUMEL = FORCED_LAYOUT[name]
    try:
        yield
    finally:
        flat_buffer.SMALL_TENSOR, flat_buffer.SAMPLE_MIN_NUMEL = saved


def _train_guard(model, opt, guard, sched, start, Xtr, ytr, poison=None, seed=0, branch_at=None):
    """The anchor's ``_train`` with ``guard.backward/step`` in place of backward/clip/step."""
    model.train()
    snap, ploss = None, None
    for step in range(start, len(sched)):
        if step == branch_at:
            snap = copy.deepcopy((model, opt, guard))
        b = sched[step]
        xb, yb = Xtr[b], ytr[b]
        if poison is not None and step == start:
            xb, yb = B.poison_batch(poison, xb, yb, seed)
        with guard.autocast():
            loss = F.cross_entropy(model(xb), yb)
        lv = loss.item()  # the protocol's divergence test reads every batch loss
        if poison is not None and step == start:
            ploss = lv
        if not math.isfinite(lv):
            return step, ploss, snap
        guard.backward(loss, batch_size=len(yb))
        guard.step()
    return None, ploss, snap


def run_guard(config, opt_kind, lr, seed, Xtr, ytr, Xte, yte, poison_step, poison_modes, hidden=256):
    torch.manual_seed(seed)
    model = C.make_mlp(Xtr.shape[1], hidden)
    opt = B.make_opt(opt_kind, model.parameters(), float(lr))
    guard = Guard(model, opt, config=copy.deepcopy(config))
    sched = B.batch_schedule(len(ytr), seed)
    model.eval()
    init_loss, _ = B.evaluate(model, Xtr, ytr)
    nf, _, snap = _train_guard(model, opt, guard, sched, 0, Xtr, ytr,
                               branch_at=poison_step if poison_modes else None)
    clean = B._result(model, lr, seed, init_loss, nf, Xtr, ytr, Xte, yte)
    clean["actions"] = len(guard.actions)
    poisoned = {}
    for mode in poison_modes:
        if snap is None:
            poisoned[mode] = dict(clean, poison_batch_loss=None)
            continue
        m2, o2, g2 = copy.deepcopy(snap)
        nf2, ploss, _ = _train_guard(m2, o2, g2, sched, poison_step, Xtr, ytr, poison=mode, seed=seed)
        poisoned[mode] = B._result(m2, lr, seed, init_loss, nf2, Xtr, ytr, Xte, yte, ploss)
        poisoned[mode]["actions"] = [a["action"] for a in g2.actions]
    return clean, poisoned


def table(paths: list[str]) -> None:
    """Print the markdown tables from result files (later files override a method of earlier ones)."""
    merged: dict[str, dict[str, dict]] = {}
    for path in paths:
        for opt_kind, methods in json.loads(Path(path).read_text())["results"].items():
            merged.setdefault(opt_kind, {}).update(methods)
    for opt_kind, methods in merged.items():
        print(f"\n**{opt_kind.upper()}**\n")
        print("| method | diverged | failed | median acc | best acc | no-failure lr range | poison 'scale' survived "
              "| poison 'scale_wrong' survived |")
        print("|---|---|---|---|---|---|---|---|")
        for name, v in methods.items():
            s = v["summary"]
            r = s["widest_nonfailed_lr_range"]
            rng = f"{r['lo']:.3g} - {r['hi']:.3g} ({r['n_points']} pts)" if r["n_points"] else "-"
            ps = " | ".join(f"{p['survived']}/{p['eligible']}" for p in s["poison"].values())
            print(f"| {name} | {s['diverged_runs']}/{s['total_runs']} | {s['failed_runs']}/{s['total_runs']} | "
                  f"{s['median_test_acc'] * 100:.1f} | {s['best_test_acc'] * 100:.1f} | {rng} | {ps} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", nargs="*", default=None, metavar="JSON",
                    help="print the markdown tables of these result files (no training)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seeds", nargs="*", type=int, default=list(B.SEEDS))
    ap.add_argument("--methods", nargs="*",
                    default=["none", "clipnorm1", "autoclip_p10", "zclip", "guard", "guard_no_trust",
                             "guard_trust_only"])
    ap.add_argument("--optimizers", nargs="*", default=["sgd", "adam"])
    ap.add_argument("--poison-modes", nargs="*", default=list(B.POISON_MODES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=256,
                    help="width of the MLP's two hidden layers for the Guard's methods (the protocol: 256; "
                         "1024 gives 1.1M parameters, where GuardConfig(trust_sample=8) samples the secant)")
    args = ap.parse_args()
    if args.hidden != 256 and not set(args.methods) <= set(GUARDS):
        ap.error("--hidden applies to the Guard's methods only (the anchors' runs build the protocol's MLP)")
    if args.table:
        return table(args.table)
    C.setup_torch(args.threads)
    anchors = B.available_methods()
    Xtr, Xte, ytr, yte = (torch.as_tensor(a) for a in C.load_dataset("digits"))
    poison_step = (math.ceil(len(ytr) / B.BATCH) * B.EPOCHS) // 2
    modes = tuple(args.poison_modes)
    res = {"protocol": "anchors/bench_c_stability.py", "threads": args.threads, "seeds": args.seeds, "hidden": args.hidden,
           "env": C.env_info(), "results": {}}
    for opt_kind in args.optimizers:
        lrs = B.SGD_LRS if opt_kind == "sgd" else B.ADAM_LRS
        res["results"][opt_kind] = {}
        for name in args.methods:
            t0 = time.perf_counter()
            clean, poisoned = {}, {m: {} for m in modes}
            for i, lr in enumerate(lrs):
                for s in args.seeds:
                    if name in GUARDS:
                        with forced_layout(name):
                            c, p = run_guard(GUARDS[name], opt_kind, lr, s, Xtr, ytr, Xte, yte, poison_step, modes,
                                             hidden=args.hidden)
                    else:
                        c, p = B.run(anchors[name], opt_kind, lr, s, Xtr, ytr, Xte, yte, poison_step, modes)
                    clean[(i, s)] = c
                    for m in modes:
                        poisoned[m][(i, s)] = p[m]
            summ = B.summarize(clean, poisoned, lrs, args.seeds)
            res["results"][opt_kind][name] = {
                "summary": summ, "runs": [clean[k] for k in sorted(clean)],
                "poison_runs": {m: [poisoned[m][k] for k in sorted(poisoned[m])] for m in modes},
            }
            ps = " ".join(f"{m}: {v['survived']}/{v['eligible']}" for m, v in summ["poison"].items())
            accs = " ".join(f"{a * 100:.1f}" for a in summ["mean_test_acc_per_lr"])
            print(f"[{opt_kind} {name:16s}] {time.perf_counter() - t0:5.1f}s diverged {summ['diverged_runs']}/"
                  f"{summ['total_runs']} failed {summ['failed_runs']} median {summ['median_test_acc'] * 100:.1f} "
                  f"best {summ['best_test_acc'] * 100:.1f} | per lr {accs} | poison {ps}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
