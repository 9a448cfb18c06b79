"""Benchmark C, extended: clipping methods across architectures, plateau-then-drop tasks included.

Every task is trained with Adam over the same learning-rate sweep (lr = geomspace(2e-3, 3e-2, 4),
seeds 0-1, no per-case tuning of the Guard) until its eval metric reaches the task's target or
the step budget ends; the eval set (256 samples for the synthetic tasks) is fixed (its own
seed) and read every ``EVAL_EVERY`` steps.

Tasks (models small enough for a shared CPU):
  mlp_digits   MLP 64-256-256-10 on digits (the anchors' split), batch 64, 460 steps; target: test
               accuracy >= 95 %.
  cnn_digits   CNN conv3x3(16)-conv3x3(32)-maxpool-linear on the 8x8 digits, same budget and target.
  adding_lstm, adding_gru
               the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly, Hinton 2015): T = 50
               steps of (value ~ U[0,1], marker); the target is the sum of the two marked values (one
               in each half). Predicting the mean gives MSE 1/6 ~ 0.167, where the loss sits before
               it drops. Hidden 32, batch 32, 1000 steps; target: eval MSE <= 0.01.
  order_lstm, order_gru
               the temporal order problem (Hochreiter & Schmidhuber 1997, task 6a), T = 50: distractor
               symbols a-d, start/end markers, and X or Y at one position in [5, 15) and one in
               [25, 35); the class is the order (XX, XY, YX, YY). Chance is ln 4 ~ 1.39 nats. Hidden
               32, batch 32, 1000 steps; target: eval accuracy >= 95 %.
  retrieve_tf  a 1-layer transformer encoder (d 32, 2 heads, learned positions) on pointer retrieval:
               16 random tokens of 16 after a query token holding a position; the answer is the
               token at that position (only attention can fetch it). Chance is ln 16 ~ 2.77 nats.
               Batch 64, 1000 steps; target: eval accuracy >= 95 %.

Methods: none; torch clip_grad_norm_ at 0.1, 1 and 10 (the best of these three per task is the
"best fixed threshold": most runs solved, then fewest median steps); AutoClip p10 global and
ZClip defaults (the anchors' own wrappers, ../shared/anchors/bench_c_stability.py); and the
Guard with ``GuardConfig()`` of whatever trainground is on the path (``--guard-label`` names
the row: run it once with the new code and once with a checkout of the old one). Ablations of the
Guard (``--methods guard_no_trust guard_no_clip guard_no_spike guard_every2``, the ``GUARDS`` dict)
switch one component off; their runs record clipped, skipped and low-trust-scale step counts.
``guard_p8`` is the Guard with ``trust_rise_overshoot=True`` (secant principle 8, an option).
For the recurrent tasks (issue 15, fourth pass; both measured and rejected): ``guard_median100`` adds
a clip at the running median of the last 100 norms (``percentile=50, percentile_history=100``; on a
non-recurrent task it would also keep the trust region), ``guard_normalize`` (``EXTRA``) normalises
every step's gradient to norm 1 after the default chain.
Issue 15, fifth pass: ``guard_follow`` is ZClip following a level shift
(``zscore_follow_level_shift=True``, adopted as the default after its runs, so ``guard`` is that
chain now); ``guard_zclip_published`` is the previous default (ZClip's EMA fed the clipped norm).
Issue 15, sixth pass: ``guard_envelope``, ``guard_level`` and ``guard_level_up`` (``EXTRA``) add
gradients/envelope.py's clip or level_normalize.py's scaling last (recurrent tasks); ``guard_level_up``
became the default (``recurrent_level="fall"``), ``guard_level_off`` is the previous default; every run stores ``init_loss_se`` and ``change_se`` for the divergence rule of
``stability_arch_report.py``, which also reports the fixed threshold chosen out of sample.

A run is solved when the target is met; diverged when a batch loss is non-finite or the eval
loss at the end is above the initial one. Steps to target are counted at eval granularity.
(Sixth pass: stability_arch_report.py also counts by a rule that does not call a flat run diverged,
the end above the start by more than two standard errors of the start loss, and reports both.)

Usage:
    PYTHONPATH=src .venv/bin/python benchmarks/stability_arch.py --tasks adding_lstm --out r.json
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/stability_arch.py --methods guard \\
        --guard-label guard_old --out old.json
    .venv/bin/python benchmarks/stability_arch.py --table r.json old.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ANCHORS = Path(__file__).resolve().parents[1].parent.parent / "shared" / "anchors"
for candidate in (ANCHORS, Path("/work/shared/anchors")):
    if (candidate / "bench_c_stability.py").exists():
        sys.path.insert(0, str(candidate))
        break
import bench_c_stability as B
import common as C

from trainground.gradients import Guard, GuardConfig
from trainground.gradients.envelope import EnvelopeClip
from trainground.gradients.level_normalize import LevelNormalize
from trainground.gradients.normalize import NormalizeGlobalNorm

# Guard rows: the defaults, and ablations that switch one component off (replaying a task's runs with
# each shows which component decides a lost run).
GUARDS = {
    "guard": GuardConfig(),
    "guard_no_trust": GuardConfig(trust_region=False),
    # issue 15, fifth pass: ZClip's EMA follows a lasting level shift (gradients/zscore.py FOLLOW_FRACTION)
    "guard_follow": GuardConfig(zscore_follow_level_shift=True),  # the default since that pass
    "guard_zclip_published": GuardConfig(zscore_follow_level_shift=False),  # ZClip's EMA fed the clipped norm
    "guard_p8": GuardConfig(trust_rise_overshoot=True),  # secant principle 8 (issue 15, third pass)
    "guard_no_clip": GuardConfig(zscore=None),
    "guard_no_spike": GuardConfig(spike_z=None),
    "guard_every2": GuardConfig(trust_every=2),
    # issue 15, fourth pass: + a clip at the running median of the last 100 norms (gradients/config.py)
    "guard_median100": GuardConfig(percentile=50, percentile_history=100),
    # issue 15, sixth pass: recurrent_level="fall" became the default; this row is the previous default
    "guard_level_off": GuardConfig(recurrent_level="off"),
}
# Rows whose chain is not a GuardConfig option: the config's own chain plus transforms appended last.
# guard_normalize: issue 15, fourth pass, second candidate (measured, not adopted; benchmarks/README.md).
# guard_envelope, guard_level: issue 15, sixth pass (gradients/envelope.py, level_normalize.py; recurrent tasks).
# Their base is the chain without the sixth pass's level (recurrent_level="off"), as measured.
_BASE = GuardConfig(recurrent_level="off")
EXTRA = {"guard_normalize": (_BASE, lambda: [NormalizeGlobalNorm(1.0)]),
         "guard_envelope": (_BASE, lambda: [EnvelopeClip()]),
         "guard_level": (_BASE, lambda: [LevelNormalize()]),
         "guard_level_up": (_BASE, lambda: [LevelNormalize(only_up=True)])}  # = "guard" since the sixth pass
LRS = np.geomspace(2e-3, 3e-2, 4)
SEEDS = (0, 1)
EVAL_EVERY = 25
CLIPS = (0.1, 1.0, 10.0)


# ------------------------------------------------------------------ tasks
@dataclass
class Task:
    make_model: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], tuple[Tensor, Tensor]]
    eval_set: tuple[Tensor, Tensor]
    loss: Callable[[Tensor, Tensor], Tensor]
    metric: str  # "mse" (lower is better) or "acc" (higher is better)
    target: float
    steps: int


def adding_batch(n: int, g: torch.Generator, length: int = 50) -> tuple[Tensor, Tensor]:
    values = torch.rand(n, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    marks = torch.zeros(n, length)
    marks[torch.arange(n), first] = 1.0
    marks[torch.arange(n), second] = 1.0
    return torch.stack([values, marks], dim=-1), (values * marks).sum(1, keepdim=True)


def order_batch(n: int, g: torch.Generator, length: int = 50) -> tuple[Tensor, Tensor]:
    # Symbols: 0-3 distractors a-d, 4 X, 5 Y, 6 start B, 7 end E.
    seq = torch.randint(0, 4, (n, length), generator=g)
    seq[:, 0], seq[:, -1] = 6, 7
    t1 = torch.randint(5, 15, (n,), generator=g)
    t2 = torch.randint(25, 35, (n,), generator=g)
    a = torch.randint(0, 2, (n,), generator=g)
    b = torch.randint(0, 2, (n,), generator=g)
    seq[torch.arange(n), t1] = 4 + a
    seq[torch.arange(n), t2] = 4 + b
    return F.one_hot(seq, 8).float(), 2 * a + b


def retrieve_batch(n: int, g: torch.Generator, length: int = 16, vocab: int = 16) -> tuple[Tensor, Tensor]:
    tokens = torch.randint(0, vocab, (n, length), generator=g)
    pointer = torch.randint(0, length, (n,), generator=g)
    query = vocab + pointer  # query tokens have their own ids
    return torch.cat([query[:, None], tokens], dim=1), tokens[torch.arange(n), pointer]


class Recurrent(nn.Module):
    def __init__(self, cell: str, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class Retriever(nn.Module):
    def __init__(self, vocab: int = 16, length: int = 16, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(2 * vocab, d)
        self.pos = nn.Parameter(torch.randn(length + 1, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(self.embed(x) + self.pos)[:, 0])


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


def _stream(make: Callable[[int, torch.Generator], tuple[Tensor, Tensor]], batch: int):
    return lambda g: make(batch, g)


def make_tasks() -> dict[str, Callable[[], Task]]:
    def digits(model: Callable[[], nn.Module]) -> Task:
        Xtr, Xte, ytr, yte = (torch.as_tensor(a) for a in C.load_dataset("digits"))

        def batch(g: torch.Generator) -> tuple[Tensor, Tensor]:
            idx = torch.randint(0, len(ytr), (64,), generator=g)
            return Xtr[idx], ytr[idx]
        return Task(model, batch, (Xte, yte), F.cross_entropy, "acc", 0.95, 460)

    def synthetic(make, batch: int, model, loss, metric, target) -> Task:
        eval_set = make(256, torch.Generator().manual_seed(10_000))
        return Task(model, _stream(make, batch), eval_set, loss, metric, target, 1000)

    def mse(out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out, y)

    return {
        "mlp_digits": lambda: digits(lambda: C.make_mlp(64)),
        "cnn_digits": lambda: digits(SmallCNN),
        "adding_lstm": lambda: synthetic(adding_batch, 32, lambda: Recurrent("lstm", 2, 32, 1), mse, "mse", 0.01),
        "adding_gru": lambda: synthetic(adding_batch, 32, lambda: Recurrent("gru", 2, 32, 1), mse, "mse", 0.01),
        "order_lstm": lambda: synthetic(order_batch, 32, lambda: Recurrent("lstm", 8, 32, 4), F.cross_entropy,
                                        "acc", 0.95),
        "order_gru": lambda: synthetic(order_batch, 32, lambda: Recurrent("gru", 8, 32, 4), F.cross_entropy,
                                       "acc", 0.95),
        "retrieve_tf": lambda: synthetic(retrieve_batch, 64, Retriever, F.cross_entropy, "acc", 0.95),
    }


# ------------------------------------------------------------------ runs
@torch.no_grad()
def evaluate(model: nn.Module, task: Task) -> tuple[float, float]:
    """(eval loss, eval metric)."""
    model.eval()
    x, y = task.eval_set
    out = model(x)
    model.train()
    loss = float(task.loss(out, y))
    if task.metric == "mse":
        return loss, loss
    return loss, float((out.argmax(1) == y).float().mean())


@torch.no_grad()
def per_sample_loss(model: nn.Module, task: Task) -> Tensor:
    """The eval set's per-sample losses (their mean is the eval loss; their spread its noise)."""
    model.eval()
    x, y = task.eval_set
    out = model(x)
    model.train()
    if task.metric == "mse":
        return ((out - y) ** 2).flatten(1).mean(1)
    return F.cross_entropy(out, y, reduction="none")


def standard_error(values: Tensor) -> float:
    return float(values.std() / math.sqrt(len(values)))


def solved(task: Task, metric: float) -> bool:
    return metric <= task.target if task.metric == "mse" else metric >= task.target


def run(task: Task, method: str, lr: float, seed: int) -> dict:
    torch.manual_seed(seed)
    model = task.make_model()
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    guard = Guard(model, opt, config=copy.deepcopy(GUARDS[method])) if method in GUARDS else None
    if method in EXTRA:
        config, extra = EXTRA[method]
        guard = Guard(model, opt, config=copy.deepcopy(config),
                      chain=[*config.build_chain(model).transforms, *extra()])
    if method.startswith("clip"):
        clip = B.NormClip(model, float(method[len("clip"):]))
    elif method in ("autoclip_p10", "zclip"):
        clip = B.METHODS[method](model)
    else:
        clip = B.NoClip(model)
    g = torch.Generator().manual_seed(1000 + seed)
    init_loss, metric = evaluate(model, task)
    init_samples = per_sample_loss(model, task)
    nonfinite, at, scales, clipped, skipped = None, None, [], 0, 0
    for step in range(1, task.steps + 1):
        x, y = task.batch(g)
        loss = task.loss(model(x), y)
        if not math.isfinite(loss.item()):
            nonfinite = step
            break
        if guard is not None:
            guard.backward(loss, batch_size=len(y))
            guard.step()
            stats = guard.last_stats
            scales.append(float(stats["update_scale"]))
            clipped += float(stats["clip_threshold"]) < float(stats["grad_norm"])
            skipped += float(stats["skipped"]) > 0
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip()
            opt.step()
        if step % EVAL_EVERY == 0:
            _, metric = evaluate(model, task)
            if solved(task, metric):
                at = step
                break
    final_loss, metric = evaluate(model, task)
    diverged = nonfinite is not None or not math.isfinite(final_loss) or final_loss > init_loss
    # The noise of the start loss (standard error over the eval set) and of the paired change
    # end - start on the same samples: what the sixth pass's divergence rule reads (stability_arch_report.py).
    init_loss_se = standard_error(init_samples)
    change_se = standard_error(per_sample_loss(model, task) - init_samples) if math.isfinite(final_loss) else None
    out = {"lr": float(lr), "seed": seed, "solved": at is not None and not diverged, "steps_to_target": at,
           "final_loss": final_loss if math.isfinite(final_loss) else None, "final_metric": metric,
           "init_loss": init_loss, "init_loss_se": init_loss_se, "change_se": change_se,
           "diverged": bool(diverged), "nonfinite_step": nonfinite}
    if scales:
        out.update(min_update_scale=min(scales), final_update_scale=scales[-1], clipped_steps=int(clipped),
                   skipped_steps=int(skipped), steps_below_half_scale=sum(x < 0.5 for x in scales),
                   actions=[a["action"] for a in guard.actions])
    return out


# ------------------------------------------------------------------ summary
def summarize(runs: list[dict]) -> dict:
    steps = [r["steps_to_target"] for r in runs if r["solved"]]
    finals = [r["final_loss"] for r in runs if r["final_loss"] is not None]
    return {"solved": sum(r["solved"] for r in runs), "total": len(runs),
            "diverged": sum(r["diverged"] for r in runs),
            "median_steps": statistics.median(steps) if steps else None,
            "median_final_loss": statistics.median(finals) if finals else None}


def speedup(runs: list[dict], reference: list[dict]) -> tuple[float | None, int]:
    """Geometric mean over the (lr, seed) cells both solved of reference steps / these steps (> 1: faster)."""
    ref = {(r["lr"], r["seed"]): r for r in reference}
    ratios = [ref[(r["lr"], r["seed"])]["steps_to_target"] / r["steps_to_target"] for r in runs
              if r["solved"] and ref.get((r["lr"], r["seed"]), {}).get("solved")]
    if not ratios:
        return None, 0
    return math.exp(sum(map(math.log, ratios)) / len(ratios)), len(ratios)


def best_clip(methods: dict[str, dict]) -> str | None:
    clips = [m for m in methods if m.startswith("clip")]
    if not clips:
        return None

    def key(m: str) -> tuple[int, float]:
        s = methods[m]["summary"]
        return (-s["solved"], s["median_steps"] if s["median_steps"] is not None else math.inf)
    return min(clips, key=key)


def table(paths: list[str]) -> None:
    merged: dict[str, dict[str, dict]] = {}
    for path in paths:
        for task, methods in json.loads(Path(path).read_text())["results"].items():
            merged.setdefault(task, {}).update(methods)
    print("| task | method | solved | diverged | median steps to target | median final loss "
          "| steps ratio vs best fixed (cells) |")
    print("|---|---|---|---|---|---|---|")
    for task, methods in merged.items():
        best = best_clip(methods)
        for name, v in methods.items():
            s = v["summary"]
            ratio, n = speedup(v["runs"], methods[best]["runs"]) if best else (None, 0)
            label = f"{name} (best fixed)" if name == best else name
            med = "-" if s["median_steps"] is None else f"{s['median_steps']:.0f}"
            fin = "-" if s["median_final_loss"] is None else f"{s['median_final_loss']:.3g}"
            rat = "-" if ratio is None or name == best else f"{ratio:.2f}x ({n})"
            print(f"| {task} | {label} | {s['solved']}/{s['total']} | {s['diverged']} | {med} | {fin} | {rat} |")


def main() -> None:
    tasks = make_tasks()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", nargs="*", default=None, metavar="JSON")
    ap.add_argument("--tasks", nargs="*", default=list(tasks))
    ap.add_argument("--methods", nargs="*",
                    default=["none", *(f"clip{c:g}" for c in CLIPS), "autoclip_p10", "zclip", "guard"])
    ap.add_argument("--guard-label", default="guard", help="row name of the Guard (e.g. guard_old)")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.table is not None:
        return table(args.table)
    C.setup_torch(args.threads)
    res = {"lrs": [float(x) for x in LRS], "seeds": args.seeds, "env": C.env_info(), "results": {}}
    for name in args.tasks:
        task = tasks[name]()
        res["results"][name] = {}
        for method in args.methods:
            t0 = time.perf_counter()
            runs = [run(copy.copy(task), method, lr, s) for lr in LRS for s in args.seeds]
            label = args.guard_label if method == "guard" else method
            summ = summarize(runs)
            res["results"][name][label] = {"summary": summ, "runs": runs}
            print(f"[{name} {label:13s}] {time.perf_counter() - t0:6.1f}s solved {summ['solved']}/{summ['total']} "
                  f"diverged {summ['diverged']} median steps {summ['median_steps']} | "
                  + " ".join(f"{r['steps_to_target'] or '-'}" for r in runs), flush=True)
            if args.out:  # partial results survive an interrupted sweep
                Path(args.out).write_text(json.dumps(res, indent=1))
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
