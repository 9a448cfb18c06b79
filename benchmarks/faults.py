"""Fault-type classification on the fault-signal generator: signal models, and MoE vs dense.

Protocol (fixed before any run):
  data    trainground.data.faults.make_faults, 1024 samples at 4096 Hz;
          train   2400 signals, seed 100, the default FaultDomain (speed 15-40 Hz, gain 0.5-2)
          test_in 1200 signals, seed 101, the same domain (i.i.d. reference)
          shifted 1200 signals, seed 102, speed 40-50 Hz and gain 2-4 (held out: faster machines,
                  more sensitive sensors than any training sample; load, noise, resonance as train)
  task    the fault type (12 classes, 40 % healthy, rare types cage and broken tooth 2 % each)
  models  mlp        the built-in MLP (256, 256) on the raw samples
          mlp_spec   the same MLP on log(1 + |rfft|) of each signal (513 bins): the classic
                     hand-made feature, to say what the learned signal models add over it
          cnn1d      the built-in 1-D CNN (ModelConfig defaults)
          cnn1d_ps   the same with per_signal=True (each signal divided by its own std: blind to
                     the sensor gain; added after the first cnn1d run showed the gain/speed shift
                     cost it most of its accuracy - reported whatever it gives)
          lstm       the built-in LSTM (64 hidden, frames of 16 samples: 64 steps)
          moe        mlp_spec's trunk Linear(513,128)-ReLU, then x + MoE(128, 8 experts, top-2,
                     hidden 64, capacity 1.25, balance 0.01), then the head
          dense      the same with x + FFN(128 -> 128 -> 128) instead: per token the MoE runs
                     2 experts of hidden 64 = the dense FFN's 128 hidden units (equal compute,
                     plus the 128x8 gate); the MoE holds 4x the FFN's parameters
  train   plain loop, Adam lr 1e-3, batch 64, 12 epochs, batches from randperm with a generator
          seeded by the seed, torch.manual_seed(seed) before building; the last epoch's model is
          scored (no early stopping, nothing chosen on the test sets)
  metrics accuracy, macro-F1 over the 12 types, rare-type recall (mean recall of the types with a
          share <= 3 %: cage, broken_tooth, oil_whirl, electrical), per type recall, accuracy by
          severity (incipient faults are meant to be hard: at severity 1 a fault adds 15 % of its
          severe amplitude, at or under the healthy machine's own spread); mean over
          seeds 0, 1; seconds per epoch (loaded machine: only the ratios measured in one process
          mean anything)

Usage: OMP_NUM_THREADS=1 python benchmarks/faults.py [--seeds 0 1] [--epochs 12] [--models ...]
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
from sklearn.metrics import f1_score, recall_score
from torch import nn

from trainground.data.faults import FAULT_SHARE, FAULT_TYPES, FaultDomain, make_faults
from trainground.models import MLP, ModelConfig, MoE, Standardize, build_model, moe_aux_loss

BATCH, LR = 64, 1e-3
RARE = [i for i, share in enumerate(FAULT_SHARE) if share <= 3]
MODELS = ("mlp", "mlp_spec", "cnn1d", "cnn1d_ps", "lstm", "moe", "dense")
SPECTRAL = ("mlp_spec", "moe", "dense")


def spectrum(x: torch.Tensor) -> torch.Tensor:
    return torch.log1p(torch.fft.rfft(x, dim=1).abs())


class Block(nn.Module):
    """Standardize -> Linear -> ReLU -> x + ffn(x) -> head; ffn is an MoE or a dense FFN."""

    def __init__(self, x: torch.Tensor, ffn: nn.Module, *, width: int = 128) -> None:
        super().__init__()
        self.normalize = Standardize((x.shape[1],)).fit(x, dims=(0,))
        self.trunk = nn.Sequential(nn.Linear(x.shape[1], width), nn.ReLU())
        self.ffn = ffn
        self.head = nn.Linear(width, len(FAULT_TYPES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(self.normalize(x))
        return self.head(h + self.ffn(h))


def build(name: str, x: torch.Tensor) -> nn.Module:
    if name == "mlp_spec":
        return MLP(x.shape[1], len(FAULT_TYPES)).fit_input_stats(x)
    if name == "cnn1d_ps":
        return build_model(ModelConfig(name="cnn1d", per_signal=True), input_shape=(x.shape[1],),
                           num_classes=len(FAULT_TYPES), train_features=x)
    if name == "moe":
        return Block(x, MoE(128, num_experts=8, k=2, hidden=64))
    if name == "dense":
        return Block(x, nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128)))
    return build_model(ModelConfig(name=name), input_shape=(x.shape[1],),
                       num_classes=len(FAULT_TYPES), train_features=x, kind="signal")


def scores(model: nn.Module, x: torch.Tensor, y: np.ndarray, severity: np.ndarray) -> dict:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(256)]).numpy()
    labels = list(range(len(FAULT_TYPES)))
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)), 4),
        "rare_recall": round(float(recall[RARE].mean()), 4),
        "recall": {FAULT_TYPES[i]: round(float(r), 4) for i, r in enumerate(recall)},
        # fault-type accuracy by severity (0 = healthy): incipient faults are hidden by design
        "accuracy_by_severity": {int(s): round(float((pred[severity == s] == y[severity == s]).mean()), 4)
                                 for s in np.unique(severity)},
    }


def run(name: str, seed: int, epochs: int, data: dict) -> dict:
    x, y, _ = data["train"]
    torch.manual_seed(seed)
    model = build(name, x)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(y), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[batch]), y[batch]) + moe_aux_loss(model)
            loss.backward()
            opt.step()
    seconds = (time.perf_counter() - started) / epochs
    out = {"model": name, "seed": seed, "epochs": epochs, "seconds_per_epoch": round(seconds, 2),
           "parameters": sum(p.numel() for p in model.parameters())}
    for split in ("test_in", "shifted"):
        out[split] = scores(model, data[split][0], data[split][1].numpy(), data[split][2])
    if name == "moe":
        moe = model.ffn
        model.train()
        with torch.no_grad():
            model(x)  # one training-mode pass: the final router's load on the training signals
        load = moe.last_routing.assigned.float() / moe.last_routing.assigned.sum()
        out["final_expert_load"] = [round(float(v), 4) for v in load]
    return out


def load_data() -> dict:
    sets = {
        "train": make_faults(2400, seed=100),
        "test_in": make_faults(1200, seed=101),
        "shifted": make_faults(1200, seed=102, domain=FaultDomain(speed_hz=(40.0, 50.0), gain=(2.0, 4.0))),
    }
    out = {}
    for split, d in sets.items():
        x = torch.from_numpy(d.signals)
        out[split] = (x, torch.from_numpy(d.fault), d.severity)
    return out


def summary(runs: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        row = {"model": name, "seeds": [r["seed"] for r in mine], "parameters": mine[0]["parameters"],
               "seconds_per_epoch": round(statistics.mean(r["seconds_per_epoch"] for r in mine), 2)}
        for split in ("test_in", "shifted"):
            for metric in ("accuracy", "macro_f1", "rare_recall"):
                values = [r[split][metric] for r in mine]
                row[f"{split}_{metric}"] = round(statistics.mean(values), 4)
                row[f"{split}_{metric}_std"] = round(statistics.pstdev(values), 4)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "faults.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw, spec = load_data(), None
    runs = []
    for name in args.models:
        if name in SPECTRAL and spec is None:
            spec = {k: (spectrum(x), y, sev) for k, (x, y, sev) in raw.items()}
        for seed in args.seeds:
            runs.append(run(name, seed, args.epochs, spec if name in SPECTRAL else raw))
            r = runs[-1]
            print(f"{name:9s} seed {seed}: in-domain acc {r['test_in']['accuracy']:.3f} f1 {r['test_in']['macro_f1']:.3f}"
                  f" | shifted acc {r['shifted']['accuracy']:.3f} f1 {r['shifted']['macro_f1']:.3f}"
                  f" rare {r['shifted']['rare_recall']:.3f} | by severity (in) {r['test_in']['accuracy_by_severity']}"
                  f" | {r['seconds_per_epoch']} s/epoch", flush=True)
    result = {"protocol": __doc__.split("Usage:")[0].strip(), "summary": summary(runs), "runs": runs,
              "machine": "2 shared CPU cores, heavily loaded (about 7 jobs); OMP_NUM_THREADS=1"}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
