"""Probe (issue 17): would the secant's dot products be cheaper inside backward, while each gradient is hot?

The default Guard on the 1M MLP takes its gradients per tensor (no flat buffer) and per step
reads them cold several times: the norm, the curvature dot ``<g_{t+1}, -u_t>``, the weight copy,
the optimizer, the difference ``-u_{t+1}``, the descent dot ``<g_{t+1}, -u_{t+1}>``. This probe
emulates exactly those passes around a plain SGD step (the same kernels on the same tensors as
``window_step.host_step``), in variants interleaved in one process (thread clock, paired ratios
against the plain step, median over rounds):

  plain       -- zero_grad / forward / backward / step
  norm_only   -- plus the per-tensor norm and its host read (the Guard without trust region's pass)
  separate    -- plus the trust region's passes as the Guard does them
  hooks       -- the norm and the curvature dot of each tensor in a post-accumulate-grad hook,
                 while autograd has just written the gradient
  hooks_fused -- hooks, and each tensor's difference followed at once by its descent dot

All variants compute the same numbers bit for bit (checked at the end). Not a library path: if a
variant wins clearly, it is worth building into ``window_step``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/trust_hooks_probe.py --model mlp_1m --rounds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_cost
from step_cost_ab import digits_batches

VARIANTS = ["plain", "norm_only", "separate", "hooks", "hooks_fused"]


def make(variant: str, sizes: list[int]):
    torch.manual_seed(0)
    model = step_cost._mlp(sizes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    params = list(model.parameters())
    old = torch.zeros(sum(p.numel() for p in params))
    flat_views, offset = [], 0
    for p in params:
        flat_views.append(old[offset:offset + p.numel()])
        offset += p.numel()
    old_views = [v.view_as(p) for v, p in zip(flat_views, params, strict=True)]
    hooked = variant.startswith("hooks")
    state: dict = {"norms": [None] * len(params), "dots": [None] * len(params), "armed": False}
    if hooked:
        for i, p in enumerate(params):
            def hook(p, i=i):
                if state["armed"]:
                    state["norms"][i] = torch.linalg.vector_norm(p.grad)
                    state["dots"][i] = torch.dot(p.grad.view(-1), flat_views[i])
            p.register_post_accumulate_grad_hook(hook)
    results: list[tuple[float, float, float]] = []

    def step(x, y):
        for p in params:
            p.grad = None
        loss = F.cross_entropy(model(x), y)
        if variant == "plain":
            loss.backward()
            opt.step()
            return
        state["armed"] = hooked
        loss.backward()
        state["armed"] = False
        grads = [p.grad for p in params]
        norms = state["norms"] if hooked else torch._foreach_norm(grads)
        total = 0.0
        for n in norms:
            value = float(n)
            total += value * value
        if variant == "norm_only":
            opt.step()
            return
        dots = state["dots"] if hooked else [torch.dot(g.view(-1), v) for g, v in zip(grads, flat_views, strict=True)]
        curvature = float(torch.stack(dots).sum())
        with torch.no_grad():
            torch._foreach_copy_(old_views, params)
            opt.step()
            if variant == "hooks_fused":
                descent_dots = []
                for o, p, g, v in zip(old_views, params, grads, flat_views, strict=True):
                    o.sub_(p)
                    descent_dots.append(torch.dot(g.view(-1), v))
            else:
                torch._foreach_sub_(old_views, params)
                descent_dots = [torch.dot(g.view(-1), v) for g, v in zip(grads, flat_views, strict=True)]
        results.append((total, curvature, float(torch.stack(descent_dots).sum())))

    return step, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mlp_1m", choices=list(step_cost.MODELS))
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    batches = digits_batches()
    runs = {v: make(v, step_cost.MODELS[args.model]) for v in VARIANTS}
    seen = dict.fromkeys(VARIANTS, 0)
    for step, _ in runs.values():
        for k in range(20):
            step(*batches[k % len(batches)])
    rounds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for v, (step, _) in runs.items():
            times = []
            for _ in range(args.steps):
                x, y = batches[seen[v] % len(batches)]
                seen[v] += 1
                t0 = time.thread_time_ns()
                step(x, y)
                times.append(time.thread_time_ns() - t0)
            rounds[v].append(float(np.median(times)) / 1e3)
    plain = np.array(rounds["plain"])
    for v in VARIANTS:
        r = np.array(rounds[v])
        print(f"{v:12s} {np.median(r):8.1f} us  paired {np.median(r / plain):.3f}")
    reference = runs["separate"][1]
    same = all(runs[v][1] == reference for v in ("hooks", "hooks_fused"))
    print(f"same norms and dot products in every variant: {same}")


if __name__ == "__main__":
    main()
