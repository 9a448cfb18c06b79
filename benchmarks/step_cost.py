"""Benchmark D (cost per step): the Guard against a plain PyTorch step, same model, same run.

Variants, each a full training step (zero_grad + forward + backward + [clip] + optimizer step):
  plain      -- no clipping (the reference, ratio 1.00)
  clipnorm1  -- torch.nn.utils.clip_grad_norm_(params, 1.0)
  guard      -- trainground Guard with its default config (spike skip, ZClip outlier clip, secant
                trust region, per-step statistics grad_norm / threshold / skipped / update scale)
  guard_p10  -- the former default: AutoClip p10 in place of the outlier clip (clips ~9 steps in 10,
                one more pass over the gradients on each)
  guard_trust_every2 -- the default with the secant measured every 2nd step (GuardConfig(trust_every=2))
  guard_no_trust -- the same without the secant trust region (where its share of the cost shows)
  guard_p8 -- the default with secant principle 8 (GuardConfig(trust_rise_overshoot=True), issue 15)
  guard_bare -- the Guard with an empty chain (weighting, skip bookkeeping, statistics only)
Models: the benchmark-C MLP 64-256-256-10 (84k parameters, batch 64 of digits) and an MLP
64-768-768-512-10 (~1.0M parameters). Protocol as the anchors' step_overhead: SGD lr 0.05,
fixed batches, 30 warm-up steps, then interleaved rounds of timed steps (perf_counter_ns);
median per variant and its ratio to plain. Every variant starts from the same weights
(seed 0), sees the same batches in the same order and uses the same optimizer; the plain
step is exactly zero_grad(set_to_none) / forward / backward / optimizer.step.

Two ratios: ``ratio`` = median of all of a variant's steps / median of plain's; ``paired`` =
median over rounds of (the variant's median in that round / plain's median in that round),
which is robust to drift (another process taking the core for a while hits one round of
every variant alike). Use many short rounds on a busy machine.

Timing is only meaningful on an otherwise idle machine:
    .venv/bin/python benchmarks/step_cost.py --threads 1 --rounds 5 --steps 200

Before/after a change of the Guard, in one process and interleaved (robust on a busy machine):
``--baseline-guard FILE`` loads the ``Guard`` of another version's ``gradients/guard.py``
(e.g. ``git show COMMIT:src/trainground/gradients/guard.py > /tmp/guard_before.py``) and
times it as extra variants ``<variant>@baseline``; ``--variants`` picks a subset.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

from trainground.gradients import Guard, GuardConfig

GUARD_OPTIONS: dict[str, dict] = {
    "guard": {}, "guard_p10": {"percentile": 10.0, "zscore": None},
    "guard_trust_every2": {"trust_every": 2},
    "guard_no_trust": {"trust_region": False},
    "guard_sampled": {"trust_sample": 8},  # issue 17: the secant on 1 cache line in 8 (= the default)
    "guard_whole": {"trust_sample": 1},  # the secant on every element (the default before)
    "guard_p8": {"trust_rise_overshoot": True},
    # issue 15, fifth pass: the previous default (ZClip's EMA fed the clipped norm)
    "guard_zclip_published": {"zscore_follow_level_shift": False},
    "guard_bare": {"spike_z": None, "percentile": None, "zscore": None, "trust_region": False},
}
# Only the variants the imported GuardConfig can express: step_cost_ab.py runs this harness
# against older source trees, which lack the options added since.
GUARD_CONFIGS = {name: GuardConfig(**options) for name, options in GUARD_OPTIONS.items()
                 if options.keys() <= {f.name for f in dataclasses.fields(GuardConfig)}}


def _mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


MODELS = {"mlp_84k": [64, 256, 256, 10], "mlp_1m": [64, 768, 768, 512, 10]}


def load_guard(path: str) -> type:
    """The ``Guard`` class of another version's ``guard.py`` (it imports the current package's other modules)."""
    spec = importlib.util.spec_from_file_location("trainground.gradients._baseline_guard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Guard


def make_step(variant: str, model: nn.Module, opt: torch.optim.Optimizer, baseline: type | None = None):
    params = list(model.parameters())
    name, _, which = variant.partition("@")
    if name in GUARD_CONFIGS:
        guard_cls = baseline if which == "baseline" else Guard
        assert guard_cls is not None
        guard = guard_cls(model, opt, config=GUARD_CONFIGS[name])

        def step(x, y):
            with guard.autocast():
                loss = F.cross_entropy(model(x), y)
            guard.backward(loss, batch_size=len(y))
            guard.step()
        step.guard = guard  # type: ignore[attr-defined]  # for benchmarks that look inside (trust_cost_breakdown.py)
        return step

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if variant == "clipnorm1":
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def measure(sizes, batches, *, rounds: int, steps: int, warmup: int = 30, variants: list[str] | None = None,
            baseline: type | None = None, clock=time.perf_counter_ns) -> dict[str, dict[str, float]]:
    runs = {}
    names = ["plain", *[v for v in ("clipnorm1", *GUARD_CONFIGS) if variants is None or v in variants]]
    if baseline is not None:
        names += [f"{v}@baseline" for v in GUARD_CONFIGS if variants is None or v in variants]
    for variant in names:
        torch.manual_seed(0)
        model = _mlp(sizes)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        runs[variant] = {"step": make_step(variant, model, opt, baseline), "k": 0, "times": []}

    def go(run, n, record):
        for _ in range(n):
            x, y = batches[run["k"] % len(batches)]
            run["k"] += 1
            t0 = clock()
            run["step"](x, y)
            if record:
                run["times"].append((clock() - t0) / 1e6)

    for run in runs.values():
        go(run, warmup, False)
    round_medians: dict[str, list[float]] = {v: [] for v in runs}
    for _ in range(rounds):
        for v, run in runs.items():
            go(run, steps, True)
            round_medians[v].append(float(np.median(run["times"][-steps:])))
    base = float(np.median(runs["plain"]["times"]))
    plain_rounds = np.array(round_medians["plain"])
    return {v: {"median_ms": float(np.median(r["times"])), "p90_ms": float(np.percentile(r["times"], 90)),
                "ratio": float(np.median(r["times"]) / base),
                "paired": float(np.median(np.array(round_medians[v]) / plain_rounds))} for v, r in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--models", nargs="*", default=None, help=f"subset of {list(MODELS)}")
    ap.add_argument("--variants", nargs="*", default=None, help=f"subset of {['clipnorm1', *GUARD_CONFIGS]}")
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of this thread (with --threads 1 all the work runs on it), "
                         "which other processes taking the cores do not inflate as they do wall time")
    ap.add_argument("--baseline-guard", default=None, help="another version's guard.py, timed as <variant>@baseline")
    ap.add_argument("--out", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    rows = []
    baseline = None if args.baseline_guard is None else load_guard(args.baseline_guard)
    torch.set_num_threads(args.threads)
    d = load_digits()
    x = torch.as_tensor(StandardScaler().fit_transform(d.data), dtype=torch.float32)
    y = torch.as_tensor(d.target)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(y) - 63, 64)]
    clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns
    print(f"threads {args.threads}, {args.rounds} rounds x {args.steps} steps, {args.clock} clock")
    print("| model | params | variant | median ms/step | p90 ms/step | ratio vs plain | paired ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, sizes in MODELS.items():
        if args.models and name not in args.models:
            continue
        n = sum(p.numel() for p in _mlp(sizes).parameters())
        for variant, r in measure(sizes, batches, rounds=args.rounds, steps=args.steps, variants=args.variants,
                                     baseline=baseline, clock=clock).items():
            print(f"| {name} | {n:,} | {variant} | {r['median_ms']:.3f} | {r['p90_ms']:.3f} | {r['ratio']:.2f} "
                  f"| {r['paired']:.2f} |", flush=True)
            rows.append({"model": name, "params": n, "variant": variant,
                         **{k: r[k] for k in ("median_ms", "p90_ms", "ratio", "paired")}})
            if args.out:  # rows so far survive an interrupted run
                Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
