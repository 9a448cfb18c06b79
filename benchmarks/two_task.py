"""Two tasks on one trunk, one of them 100x louder: summed loss vs per-task gradient handling.

Protocol (fixed before any run):
  data    digits, the anchors' split (80/20 stratified, seed 0, train-fitted scaler)
  tasks   "digit": the 10-class label (the quiet task);
          "parity": digit % 2 (2 classes), its loss multiplied by --scale (default 100),
          so its gradients are ~100x larger (the loud task)
  model   trunk in-256-256 (ReLU) + one linear head per task; torch.manual_seed(seed)
  train   plain PyTorch loop (multi-task labels do not go through `fit`), batch 64,
          20 epochs, batches from randperm with a generator seeded by the seed;
          Adam lr 1e-3 and SGD lr 0.05 momentum 0.9 (both chosen before running)
  methods sum          (digit + 100 * parity).backward()
          clip_global  the same, then clip_grad_norm_(params, 1.0)
          task_clip    TaskGradients(max_norm=1.0): each task's gradient clipped to 1 first
          pcgrad       TaskGradients(pcgrad=True) on the trunk
          clip+pcgrad  both
          uncertainty  Kendall et al. learned weights on the scaled losses (summed backward)
          dwa          Liu et al. DWA weights on the scaled losses (summed backward)
          unscaled     digit + parity (no 100x): the reference without the imbalance
  metrics test accuracy of both tasks, mean +- std (population) over seeds 0, 1, 2;
          median time of one step (zero_grad + forward + backward + step) per method

Usage: python benchmarks/two_task.py [--threads 1] [--seeds 0 1 2] [--scale 100] [--out two_task.json]
Step times are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from trainground.gradients.tasks import TaskGradients, gradient_norm, task_gradients
from trainground.losses import MultiTaskLoss

EPOCHS, BATCH, MAX_NORM = 20, 64, 1.0
METHODS = ("sum", "clip_global", "task_clip", "pcgrad", "clip+pcgrad", "uncertainty", "dwa", "unscaled")
OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
}


class TwoHeads(nn.Module):
    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.heads = nn.ModuleDict({"digit": nn.Linear(256, 10), "parity": nn.Linear(256, 2)})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}


def load() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.2, stratify=d.target, random_state=0)
    scaler = StandardScaler().fit(x_tr)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([y, y % 2], 1).astype(np.int64))  # [N, 2]: digit, parity

    as_tensor = lambda a: torch.from_numpy(scaler.transform(a).astype(np.float32))
    return as_tensor(x_tr), labels(y_tr), as_tensor(x_te), labels(y_te)


def train(method: str, optimizer: str, seed: int, data, scale: float) -> dict[str, float]:
    x, y, x_te, y_te = data
    torch.manual_seed(seed)
    model = TwoHeads(x.shape[1])
    loud = 1.0 if method == "unscaled" else scale
    tasks = ["digit", "parity"]
    weighting = {"uncertainty": "uncertainty", "dwa": "dwa"}.get(method, "static")
    objective = MultiTaskLoss(tasks, weighting=weighting)
    params = [*model.parameters(), *objective.parameters()]
    opt = OPTIMIZERS[optimizer](params)
    handler = None
    if method in ("task_clip", "pcgrad", "clip+pcgrad"):
        handler = TaskGradients(
            params, shared=model.trunk, max_norm=MAX_NORM if "clip" in method else None,
            pcgrad="pcgrad" in method, seed=seed,
        )
    g = torch.Generator().manual_seed(seed)
    step_times, cosines = [], []
    for _ in range(EPOCHS):
        for b in torch.randperm(len(y), generator=g).split(BATCH):
            started = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model(x[b])
            raw = {"digit": F.cross_entropy(out["digit"], y[b, 0]), "parity": loud * F.cross_entropy(out["parity"], y[b, 1])}
            losses = objective.weighting(raw)
            if handler is not None:
                handler.backward(losses)
            else:
                sum(losses.values()).backward()
                if method == "clip_global":
                    torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
            opt.step()
            step_times.append(time.perf_counter() - started)
            if handler is not None and handler.last_cosine is not None:
                cosines.append(handler.last_cosine[0, 1])
        objective.end_epoch()
    with torch.no_grad():
        out = model.eval()(x_te)
    result = {
        "digit_accuracy": float((out["digit"].argmax(1) == y_te[:, 0]).double().mean()),
        "parity_accuracy": float((out["parity"].argmax(1) == y_te[:, 1]).double().mean()),
        "median_step_ms": 1e3 * statistics.median(step_times),
        "final_weights": objective.weights().tolist(),
        "finite": bool(all(torch.isfinite(p).all() for p in model.parameters())),
    }
    if cosines:
        result["mean_task_cosine"] = float(torch.stack(cosines).mean())
    return result


def initial_gradient_ratio(data, scale: float, seed: int) -> float:
    """Norm of the loud task's trunk gradient over the quiet one's, at init on the first batch."""
    x, y, _, _ = data
    torch.manual_seed(seed)
    model = TwoHeads(x.shape[1])
    b = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:BATCH]
    out = model(x[b])
    losses = {"digit": F.cross_entropy(out["digit"], y[b, 0]), "parity": scale * F.cross_entropy(out["parity"], y[b, 1])}
    grads = task_gradients(losses, list(model.trunk.parameters()))
    return float(gradient_norm(grads["parity"]) / gradient_norm(grads["digit"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load()
    ratios = [initial_gradient_ratio(data, args.scale, s) for s in args.seeds]
    print(f"loud/quiet trunk gradient norm at init: {np.mean(ratios):.0f}x (per seed {[round(r) for r in ratios]})")
    results: dict[str, dict[str, list[dict]]] = {}
    for optimizer in args.optimizers:
        results[optimizer] = {m: [train(m, optimizer, s, data, args.scale) for s in args.seeds] for m in args.methods}
        print(f"\n{optimizer}: parity loss x{args.scale:g}, seeds {args.seeds}, {EPOCHS} epochs\n")
        print("| method | digit acc (quiet task) | parity acc (loud task) | median ms/step | final task weights |")
        print("|---|---|---|---|---|")
        for method, runs in results[optimizer].items():
            cells = []
            for key in ("digit_accuracy", "parity_accuracy"):
                values = [100 * r[key] for r in runs]
                cells.append(f"{np.mean(values):.1f} ± {np.std(values):.1f}")
            ms = statistics.median(r["median_step_ms"] for r in runs)
            weights = np.mean([r["final_weights"] for r in runs], axis=0)
            bad = sum(not r["finite"] for r in runs)
            note = f" ({bad} non-finite)" if bad else ""
            row = f"| {method}{note} | {cells[0]} | {cells[1]} | {ms:.2f} | {weights[0]:.3g}, {weights[1]:.3g} |"
            print(row)
    if args.out:
        meta = {"initial_gradient_ratio": ratios, "scale": args.scale, "seeds": args.seeds, "epochs": EPOCHS,
                "threads": args.threads, "max_norm": MAX_NORM, "torch": torch.__version__}
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
