"""Benchmark E (adaptive accumulation).

Part 1 -- noise-scale estimate vs exact. Softmax (multinomial logistic) regression on digits
(standardised, 1437-sample train split of the anchors' 80/20 split, seed 0). At a fixed
weight vector (after 1 epoch of SGD), the exact simple noise scale is
``B = tr(Sigma) / |G|^2`` from the closed-form per-sample gradients ``(p - y) x^T`` over the
whole set. The Guard's estimator sees only what an accumulating loop has: the norm of the
first micro-batch and of the whole window (micro-batch 8, K = 8), micro-batches drawn with
replacement, weights frozen (lr 0). Reported: estimate after N windows vs exact.

Part 2 -- adaptive K vs the best fixed K in hindsight. Same model, SGD lr 0.5, micro-batch 8,
a budget of 40 epochs of samples. Fixed K in {1, 2, 4, 8, 16} and the Guard's adaptive K
(bounds [2, 16], no tuning). Reported: final full-train loss of each, and the samples the
adaptive run needed to first reach the best fixed K's final loss (evaluated every 64 steps).

    .venv/bin/python benchmarks/accumulation.py --threads 1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from trainground.gradients import Guard, GuardConfig

PLAIN = {"spike_z": None, "percentile": None, "trust_region": False}  # accumulation only


def load() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    xtr, _, ytr, _ = train_test_split(d.data, d.target, test_size=0.2, stratify=d.target, random_state=0)
    x = StandardScaler().fit_transform(xtr)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(ytr)


def exact_noise_scale(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
        r = p - F.one_hot(y, 10).float()  # dL/dlogits per sample
        per_w = r[:, :, None] * x[:, None, :]  # (n, 10, 64)
        per = torch.cat([per_w.flatten(1), r], 1).double()  # weight and bias gradients
        mean = per.mean(0)
        trace = ((per - mean) ** 2).sum(1).mean()  # tr(Sigma), population covariance
        return float(trace / mean.pow(2).sum())


def part1(x, y, windows: int, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    model = nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(seed)
    for rows in torch.randperm(len(y), generator=g).split(32):  # one epoch: a non-trivial point
        opt.zero_grad()
        F.cross_entropy(model(x[rows]), y[rows]).backward()
        opt.step()
    exact = exact_noise_scale(model, x, y)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    guard = Guard(model, frozen, config=GuardConfig(accumulation=8, adaptive_accumulation=True, max_accumulation=8,
                                                    **PLAIN))
    guard.noise_scale.beta = 1.0 - 1.0 / windows  # a long average at a fixed point
    out = {"exact": exact}
    for w in range(1, windows + 1):
        for _ in range(8):
            rows = torch.randint(0, len(y), (8,), generator=g)
            guard.backward(F.cross_entropy(model(x[rows]), y[rows]), batch_size=8)
        guard.step()
        if w in (500, 2000, windows):
            # bias-corrected EMA ratio (the 1/(1-beta^n) factors cancel in the ratio)
            out[f"estimate_{w}"] = float(guard.noise_scale.value)
    return out


def full_loss(model, x, y) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def train(x, y, *, k: int | None, budget: int, seed: int = 0, lr: float = 0.5, micro: int = 8):
    torch.manual_seed(seed)
    model = nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    config = GuardConfig(accumulation=k or 1, adaptive_accumulation=k is None, max_accumulation=16, **PLAIN)
    guard = Guard(model, opt, config=config)
    g = torch.Generator().manual_seed(seed)
    seen, curve, ks = 0, [], []
    while seen < budget:
        for rows in torch.randperm(len(y), generator=g).split(micro):
            guard.backward(F.cross_entropy(model(x[rows]), y[rows]), batch_size=len(rows))
            seen += len(rows)
            if guard.step() and guard.steps % 16 == 0:
                curve.append((seen, full_loss(model, x, y)))
                ks.append(guard.k)
            if seen >= budget:
                break
    guard.step(force=True)
    curve.append((seen, full_loss(model, x, y)))
    return curve, ks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load()
    print("## noise scale: estimate vs exact (softmax regression, digits)")
    print(f"| seed | exact B_simple | est. 500 windows | est. 2000 | est. {args.windows} | error |")
    print("|---|---|---|---|---|---|")
    for s in args.seeds:
        r = part1(x, y, args.windows, seed=s)
        err = r[f"estimate_{args.windows}"] / r["exact"] - 1
        print(f"| {s} | {r['exact']:.1f} | {r['estimate_500']:.1f} | {r['estimate_2000']:.1f} | "
              f"{r[f'estimate_{args.windows}']:.1f} | {err * 100:+.1f} % |", flush=True)
    budget = args.epochs * len(y)
    print(f"\n## adaptive K vs fixed K (SGD lr 0.5, micro-batch 8, budget {budget} samples)")
    print("| seed | " + " | ".join(f"K={k} final loss" for k in (1, 2, 4, 8, 16)) +
          " | adaptive final loss | adaptive K range | samples to reach best fixed |")
    print("|---" * 9 + "|")
    for s in args.seeds:
        finals = {}
        for k in (1, 2, 4, 8, 16):
            curve, _ = train(x, y, k=k, budget=budget, seed=s)
            finals[k] = curve[-1][1]
        curve, ks = train(x, y, k=None, budget=budget, seed=s)
        best = min(finals.values())
        reach = next((n for n, loss in curve if loss <= best), None)
        print(f"| {s} | " + " | ".join(f"{finals[k]:.4f}" for k in finals) +
              f" | {curve[-1][1]:.4f} | {min(ks)}-{max(ks)} | "
              f"{reach if reach is not None else 'not reached'} (budget {budget}) |", flush=True)


if __name__ == "__main__":
    main()
