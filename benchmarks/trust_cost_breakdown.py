"""Where the secant trust region's share of benchmark D goes: its kernels and its Python, timed in the step.

The default Guard's step on benchmark D's models (SGD lr 0.05, digits batches of 64), with
thread-clock timers around the trust region's parts: the two dot products (``HostContext.dot``),
the weight copy and difference (``_foreach_copy_`` / ``_foreach_sub_`` in ``window_step``), and
the secant's own bookkeeping (``SecantTrustRegion.host`` / ``after_step`` minus their dots).
Each timer costs a clock read (about 1 us here), so the parts are upper bounds; the step totals
(best of ``--repeats`` blocks) are without timers and set against the Guard without the trust
region, interleaved in the same process. ``floor``: the same kernels on the Guard's own buffers
in a hot loop (best of 5 blocks of 200; the buffers stay in cache between calls), i.e. what the
passes cost without the rest of the step evicting their data: the part no reordering of Python
can remove.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/trust_cost_breakdown.py --steps 200 --repeats 7
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_cost

from trainground.gradients import window_step
from trainground.gradients.context import HostContext
from trainground.gradients.secant import SecantTrustRegion

SPENT: collections.Counter[str] = collections.Counter()


def timed(fn, label):
    def wrapper(*args, **kwargs):
        t0 = time.thread_time_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.thread_time_ns() - t0
    return wrapper


class _TimedTorch:
    """``torch`` as ``window_step`` sees it, with the weight copy and difference timed."""

    def __getattr__(self, name):
        fn = getattr(torch, name)
        return timed(fn, name) if name in ("_foreach_copy_", "_foreach_sub_") else fn


def hot_floor(guard, reps: int = 200) -> dict[str, float]:
    """The trust region's four passes on the Guard's own buffers in a hot loop (us per call, best of 5)."""
    params, old = guard.buffers.params, guard.buffers.old_views
    grads = [torch.zeros_like(p) for p in params] if guard.buffers.flat is None else guard.buffers.views
    flat_old = guard.buffers.old_flat_views

    def dot():
        if guard.buffers.flat is not None:
            return float(torch.dot(guard.buffers.flat, guard.buffers.old))
        return float(torch.stack([torch.dot(g.reshape(-1), v) for g, v in zip(grads, flat_old, strict=True)]).sum())

    def copy():
        with torch.no_grad():
            torch._foreach_copy_(old, params)

    def sub():
        with torch.no_grad():
            torch._foreach_sub_(old, params)

    out = {}
    for name, fn in (("dot product", dot), ("weight copy", copy), ("difference", sub)):
        best = float("inf")
        for _ in range(5):
            t0 = time.thread_time_ns()
            for _ in range(reps):
                fn()
            best = min(best, (time.thread_time_ns() - t0) / reps / 1e3)
        out[name] = best
    with torch.no_grad():
        torch._foreach_copy_(old, params)  # leave the update buffer as the copy would
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = load_digits()
    x = torch.as_tensor(StandardScaler().fit_transform(d.data), dtype=torch.float32)
    y = torch.as_tensor(d.target)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(y) - 63, 64)]
    for name, sizes in step_cost.MODELS.items():
        steps, guards = {}, {}
        for variant in ("plain", "guard", "guard_no_trust"):
            torch.manual_seed(0)
            model = step_cost._mlp(sizes)
            steps[variant] = step_cost.make_step(variant, model, torch.optim.SGD(model.parameters(), lr=0.05))
            guards[variant] = getattr(steps[variant], "guard", None)
        best = dict.fromkeys(steps, float("inf"))
        for r in range(args.repeats):
            for variant, step in steps.items():
                t0 = time.thread_time_ns()
                for k in range(args.steps):
                    step(*batches[(r * args.steps + k) % len(batches)])
                best[variant] = min(best[variant], (time.thread_time_ns() - t0) / args.steps / 1e3)
        # The parts, timed in the default Guard's step.
        originals = (HostContext.dot, SecantTrustRegion.host, SecantTrustRegion.after_step, window_step.torch)
        HostContext.dot = timed(HostContext.dot, "dot products")  # type: ignore[method-assign]
        SecantTrustRegion.host = timed(SecantTrustRegion.host, "secant.host")  # type: ignore[method-assign]
        SecantTrustRegion.after_step = timed(SecantTrustRegion.after_step, "secant.after_step")  # type: ignore[method-assign]
        window_step.torch = _TimedTorch()  # type: ignore[assignment]
        try:
            SPENT.clear()
            for k in range(args.steps):
                steps["guard"](*batches[k % len(batches)])
        finally:
            HostContext.dot, SecantTrustRegion.host, SecantTrustRegion.after_step, window_step.torch = originals
        part = {k: v / args.steps / 1e3 for k, v in SPENT.items()}
        bookkeeping = part["secant.host"] + part["secant.after_step"] - part["dot products"]
        print(f"{name}: plain {best['plain']:.0f} us, Guard {best['guard']:.0f} us, without trust region "
              f"{best['guard_no_trust']:.0f} us (trust region {best['guard'] - best['guard_no_trust']:.0f} us/step)")
        print(f"  dot products {part['dot products']:.0f} us, weight copy {part['_foreach_copy_']:.0f} us, "
              f"difference {part['_foreach_sub_']:.0f} us, secant bookkeeping {bookkeeping:.0f} us", flush=True)
        floor = hot_floor(guards["guard"])
        print(f"  floor (hot loop, same buffers): dot product {floor['dot product']:.0f} us (x2 per step), "
              f"weight copy {floor['weight copy']:.0f} us, difference {floor['difference']:.0f} us", flush=True)


if __name__ == "__main__":
    main()
