"""Bit-identity of the Guard's trajectory across two source trees (a refactor or speed-up must not move it).

Each case trains a small MLP on digits for a few hundred steps with a Guard (loss spikes and a
poisoned batch included, so skips, rollbacks and the trust region's gate all act), then hashes
the final weights, the optimizer state, the chain's ``state_dict`` and every step's statistics.
The driver runs the cases in one process per tree (``PYTHONPATH``) and compares, per case,
the hashes, and where they differ the largest weight difference.

    git archive <commit> | tar -x -C /tmp/base
    OMP_NUM_THREADS=1 python benchmarks/guard_identity.py --baseline-src /tmp/base/src
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, hidden sizes, optimizer, lr, GuardConfig overrides, batch size)
CASES = [
    ("sgd_85k", [64, 256, 256, 10], "sgd", 0.5, {}, 64),
    ("sgd_85k_lr3", [64, 256, 256, 10], "sgd", 3.0, {}, 64),
    ("adam_85k", [64, 256, 256, 10], "adam", 3e-3, {}, 64),
    ("sgd_85k_batch50", [64, 256, 256, 10], "sgd", 0.5, {}, 50),
    ("sgd_85k_every2", [64, 256, 256, 10], "sgd", 0.5, {"trust_every": 2}, 64),
    ("sgd_85k_k2", [64, 256, 256, 10], "sgd", 0.5, {"accumulation": 2}, 32),
    ("rprop_85k", [64, 256, 256, 10], "rprop", 1e-3, {}, 64),
    ("momentum_1m", [64, 768, 768, 512, 10], "momentum", 0.1, {}, 64),
    ("sgd_85k_p8", [64, 256, 256, 10], "sgd", 1.0, {"trust_rise_overshoot": True}, 64),
    ("tensor_path_85k", [64, 256, 256, 10], "sgd", 0.5, {"tensor_path": True}, 64),
]


class TensorOnly:
    """A do-nothing transform without a float path: the Guard then takes its tensor path on a CPU too."""

    def __call__(self, ctx) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


STEPS = 120


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().double().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# Settings a transform's state_dict gained after some baseline; every case here runs them at the
# value that reproduces the older behaviour, so hashing them would only say the trees differ in age.
NEW_SETTINGS = {"sample"}  # SecantTrustRegion.sample (issue 17): 1 = every element, as before


def _flatten(obj, out):
    import torch

    if isinstance(obj, torch.Tensor):
        out.append(obj.reshape(-1))
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            if k not in NEW_SETTINGS:
                _flatten(obj[k], out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _flatten(v, out)
    elif isinstance(obj, (int, float, bool)):
        out.append(torch.tensor([float(obj)]))
    return out


def run_case(name, sizes, opt_name, lr, overrides, batch) -> dict:
    import itertools

    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from torch import nn

    from trainground.gradients import Guard, GuardConfig

    torch.manual_seed(0)
    d = load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.as_tensor(d.target)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=lr), "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=lr), "rprop": lambda p: torch.optim.Rprop(p, lr=lr)}[opt_name](
        model.parameters())
    overrides = dict(overrides)
    tensor_path = overrides.pop("tensor_path", False)
    config = GuardConfig(check_every=5, **overrides)
    chain = [*config.build_chain(model), TensorOnly()] if tensor_path else None
    guard = Guard(model, opt, config=config, chain=chain)
    stats = []
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    for step in range(STEPS):
        idx = order[(step * batch) % (len(y) - batch):][:batch]
        xb, yb = x[idx], y[idx]
        if step in (40, 41, 42, 43):  # a persistent spike: skips, then a rollback
            xb = xb * 30.0
        loss = F.cross_entropy(model(xb), yb)
        guard.backward(loss, batch_size=len(yb))
        guard.step()
        stats.append([float(v) for v in guard.last_stats.values()])
    return {"weights": _digest(list(model.parameters())),
            "optimizer": _digest(_flatten(opt.state_dict()["state"], [])),
            "chain": _digest(_flatten(guard.chain.state_dict(), [])),
            "stats": hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16],
            "actions": [a["action"] for a in guard.actions],
            "min_update_scale": min(s[4] for s in stats),  # last_stats: grad_norm, threshold, k, skipped, update_scale
            "weights_values": [float(v) for v in torch.cat([p.detach().reshape(-1) for p in model.parameters()])[::997]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, required=False)
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        import torch

        torch.set_num_threads(1)
        args.worker.write_text(json.dumps({c[0]: run_case(*c) for c in CASES}))
        return
    trees = {"this": ROOT / "src"}
    if args.baseline_src is not None:
        trees = {"before": args.baseline_src.resolve(), **trees}
    results = {}
    with tempfile.TemporaryDirectory(prefix="guard_identity_") as scratch:
        for name, src in trees.items():
            out = Path(scratch) / f"{name}.json"
            env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
            subprocess.run([sys.executable, __file__, "--worker", str(out)], env=env, check=True)
            results[name] = json.loads(out.read_text())
    failed = 0
    for case, _, _, _, _, _ in CASES:
        rows = {t: r[case] for t, r in results.items()}
        keys = ("weights", "optimizer", "chain", "stats", "actions")
        same = all(len({json.dumps(rows[t][k]) for t in rows}) == 1 for k in keys)
        detail = ""
        if not same:
            failed += 1
            a, b = (rows[t]["weights_values"] for t in trees)
            largest = max(abs(u - v) for u, v in zip(a, b, strict=True))
            differ = [k for k in keys if len({json.dumps(rows[t][k]) for t in rows}) > 1]
            detail = f" max |dw| (sampled) {largest:.3g}; differ: {differ}"
        print(f"{case:18s} {'identical' if same else 'DIFFERENT'} {rows['this']['actions'].count('skip')} skips, "
              f"{rows['this']['actions'].count('rollback')} rollbacks, smallest trust scale "
              f"{rows['this']['min_update_scale']:.3g}{detail}")
    sys.exit(1 if failed and len(trees) > 1 else 0)


if __name__ == "__main__":
    main()
