"""Deliberately broken runs (one pathology each) and healthy runs: does the diagnosis find,
name and date each pathology, and stay silent on the healthy ones?

Every run trains with ``fit`` and a ``DiagnosisCallback`` (checks every 50 steps and at the
end). A pathology counts as detected when its expected check reports a finding of severity
warning or above; as named when that check is among the findings of the highest severity
the run produced. "Steps after onset" is the finding's first-seen step minus the step at
which the pathology was introduced (0 for a broken initialisation or configuration).
A healthy run's false alarms are its findings of severity warning or above.

The thresholds of the checks were fixed (with their reasons, in their modules) before
this suite was first run; nothing here feeds back into them.

Usage: python benchmarks/diagnosis_suite.py [--threads 1] [--only NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from torch import nn

from trainground.data import IndexedDataset, LabelEncoder, load_data, stratified_split
from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, Finding, Severity
from trainground.engine import Callback, FitConfig, fit
from trainground.gradients import GuardConfig
from trainground.models import MLP, ModelConfig, SmallCNN, build_model
from trainground.models.standardize import Standardize

CHECK_EVERY = 50

# ---------------------------------------------------------------- data
_CACHE: dict[str, IndexedDataset] = {}


def _sklearn(name: str) -> IndexedDataset:
    loader = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}[name]
    d = loader()
    return IndexedDataset(
        features=torch.tensor(d.data, dtype=torch.float32), labels=torch.tensor(d.target, dtype=torch.long),
        index=torch.arange(len(d.target)), encoder=LabelEncoder.fit(d.target), kind="table", name=name,
    )


def dataset(name: str) -> IndexedDataset:
    if name not in _CACHE:
        if name in ("digits", "mnist1d"):
            _CACHE[name] = load_data(f"builtin:{name}")
        elif name == "digits_images":
            d = dataset("digits")
            _CACHE[name] = IndexedDataset(d.features.reshape(-1, 1, 8, 8), d.labels, d.index, d.encoder, "image",
                                          "digits_images")
        else:
            _CACHE[name] = _sklearn(name)
    return _CACHE[name]


def split(name: str, fraction: float = 0.2) -> tuple[IndexedDataset, IndexedDataset]:
    """Stratified split (80/20 unless a case says otherwise), seed 0 (the same for every run on a dataset)."""
    data = dataset(name)
    train_pos, val_pos = stratified_split(data.labels.numpy(), fraction=fraction, seed=0)
    return data.subset(train_pos), data.subset(val_pos)


def shift_two_features(train: IndexedDataset, val: IndexedDataset) -> tuple[IndexedDataset, IndexedDataset, list[str]]:
    """Shift the validation split by +1 training standard deviation in the two features with
    the largest training standard deviation (a fixed rule, not a choice per dataset)."""
    std = train.features.std(dim=0)
    cols = torch.argsort(std, descending=True)[:2]
    x = val.features.clone()
    x[:, cols] += std[cols]
    names = list(getattr(train.schema, "feature_names", ()) or ())
    named = [names[c] if names else f"x{int(c)}" for c in cols]
    return train, IndexedDataset(x, val.labels, val.index, val.encoder, val.kind, val.name, val.schema), named


def tiny_train(train: IndexedDataset, val: IndexedDataset, n: int = 250) -> tuple[IndexedDataset, IndexedDataset, list[str]]:
    keep, _ = stratified_split(train.labels.numpy(), fraction=1 - n / len(train), seed=0)
    return train.subset(keep), val, []


# ---------------------------------------------------------------- models
class DeepNet(nn.Module):
    """Standardize -> [Linear -> act] x depth -> Linear head, with optional broken initialisation."""

    def __init__(self, train: IndexedDataset, classes: int, *, width: int, depth: int, act: type[nn.Module],
                 weight_scale: float = 1.0, bias: float | None = None) -> None:
        super().__init__()
        d = train.features.shape[1]
        self.normalize = Standardize((d,)).fit(train.features, dims=(0,))
        layers: list[nn.Module] = []
        for i in range(depth):
            linear = nn.Linear(d if i == 0 else width, width)
            with torch.no_grad():
                linear.weight.mul_(weight_scale)
                if bias is not None:
                    linear.bias.fill_(bias)
            layers += [linear, act()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.normalize(x)))


def mlp(hidden: tuple[int, ...], dropout: float = 0.0) -> Callable[[IndexedDataset, int], nn.Module]:
    return lambda train, c: MLP(train.features.shape[1], c, hidden=hidden, dropout=dropout).fit_input_stats(
        train.features)


def cnn(channels: tuple[int, ...] = (32, 64)) -> Callable[[IndexedDataset, int], nn.Module]:
    return lambda train, c: SmallCNN(1, c, image_size=(8, 8), channels=channels).fit_input_stats(train.features)


def deep(**kw: Any) -> Callable[[IndexedDataset, int], nn.Module]:
    return lambda train, c: DeepNet(train, c, **kw)


def default_mlp(train: IndexedDataset, classes: int) -> nn.Module:
    """The model ``trainground diagnose`` builds by default (``models.build_model``)."""
    return build_model(ModelConfig(), input_shape=train.input_shape, num_classes=classes, train_features=train.features)


def frozen_second_layer(train: IndexedDataset, c: int) -> nn.Module:
    model = mlp((256, 256))(train, c)
    for p in model.body[2].parameters():  # type: ignore[index]
        p.requires_grad_(False)  # the bug: a layer left frozen after an experiment
    return model


# ---------------------------------------------------------------- mid-run breakage
class BreakAt(Callback):
    """Test harness only: breaks the run at a given step (a real callback never acts)."""

    def __init__(self, step: int, action: Callable[[Any], None]) -> None:
        self.step, self.action = step, action

    def on_batch_end(self, state: Any) -> None:
        if state.step == self.step:
            self.action(state)


def lr_times(factor: float) -> Callable[[Any], None]:
    def act(state: Any) -> None:
        for group in state.optimizer.param_groups:
            group["lr"] *= factor
    return act


def freeze_body2(state: Any) -> None:
    for p in state.model.body[2].parameters():
        p.requires_grad_(False)


# ---------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    data: str
    model: Callable[[IndexedDataset, int], nn.Module]
    fit: dict[str, Any] = field(default_factory=dict)
    expected: tuple[str, ...] = ()  # empty: a healthy run
    onset: int | str = 0  # step the pathology starts; "best_val" for overfitting
    seed: int = 0
    transform: Callable[..., Any] | None = None
    breaker: Callable[[], Callback] | None = None
    guard: GuardConfig | None = None  # None: fit's default for a healthy run, UNGUARDED for a broken one
    val_fraction: float = 0.2  # 0.1 = fit's default split: 15 validation rows on iris

    @property
    def healthy(self) -> bool:
        return not self.expected


ADAM = {"optimizer": "adam", "lr": 1e-3}
SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
ADAMW = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2}

PATHOLOGIES = [
    Case("vanishing: 10-layer sigmoid MLP", "digits", deep(width=64, depth=10, act=nn.Sigmoid), ADAM,
         expected=("vanishing_gradients",)),
    Case("exploding: 6-layer ReLU MLP, weights x10 at init", "digits", deep(width=128, depth=6, act=nn.ReLU, weight_scale=10.0),
         {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}, expected=("exploding_gradients",)),
    Case("exploding: SGD lr 3.0", "digits", mlp((256, 256)), {"optimizer": "sgd", "lr": 3.0, "momentum": 0.9},
         expected=("exploding_gradients", "lr_too_high", "loss_spikes")),
    Case("lr jump x300 at step 300 (Adam 1e-3 -> 0.3)", "digits", mlp((256, 256)), ADAM,
         expected=("lr_too_high", "exploding_gradients", "loss_spikes", "oscillating_loss"), onset=300,
         breaker=lambda: BreakAt(300, lr_times(300.0))),
    Case("dead ReLUs: biases -5 at init", "digits", deep(width=256, depth=2, act=nn.ReLU, bias=-5.0), ADAM,
         expected=("dead_units",)),
    Case("saturation: tanh MLP, weights x10 at init", "digits", deep(width=256, depth=3, act=nn.Tanh, weight_scale=10.0),
         ADAM, expected=("saturated_activations",)),
    Case("frozen: body.2 requires_grad off", "digits", frozen_second_layer, ADAM, expected=("frozen_layer",)),
    Case("frozen at step 200", "digits", mlp((256, 256)), ADAM, expected=("frozen_layer",), onset=200,
         breaker=lambda: BreakAt(200, freeze_body2)),
    Case("collapse: 2-unit bottleneck", "digits", mlp((256, 2)), ADAM, expected=("representation_collapse",)),
    Case("collapse: heavy weight decay (Adam L2 1.0)", "digits", mlp((256, 256)), {**ADAM, "weight_decay": 1.0},
         expected=("representation_collapse",)),
    Case("shift: val +1 sd in 2 features (digits)", "digits", mlp((256, 256)), ADAM, expected=("distribution_shift",),
         transform=shift_two_features),
    Case("shift: val +1 sd in 2 features (wine)", "wine", mlp((64, 64)), {**ADAM, "batch_size": 16},
         expected=("distribution_shift",), transform=shift_two_features),
    Case("lr too low: Adam 1e-5", "digits", mlp((256, 256)), {"optimizer": "adam", "lr": 1e-5},
         expected=("lr_too_low",)),
    Case("lr too low: SGD 1e-4", "digits", mlp((256, 256)), {"optimizer": "sgd", "lr": 1e-4, "momentum": 0.9},
         expected=("lr_too_low",)),
    Case("guard stall: fixed clip 1e-4, SGD 0.05", "digits", mlp((256, 256)), SGD, expected=("guard_stall",),
         guard=GuardConfig(max_norm=1e-4)),
    Case("lr too high: Adam 0.1", "digits", mlp((256, 256)), {"optimizer": "adam", "lr": 0.1},
         expected=("lr_too_high", "oscillating_loss")),
    Case("overfitting: 250 mnist1d samples, 150 epochs", "mnist1d", mlp((256, 256)), {**ADAM, "epochs": 150},
         expected=("overfitting",), onset="best_val", transform=tiny_train),
]

HEALTHY = [
    *[Case(f"digits MLP 256x256 Adam seed {s}", "digits", mlp((256, 256)), ADAM, seed=s) for s in (0, 1, 2)],
    Case("digits MLP 128 Adam", "digits", mlp((128,)), ADAM),
    Case("digits MLP 512-256-128 Adam", "digits", mlp((512, 256, 128)), ADAM),
    Case("digits MLP 64x4 Adam", "digits", mlp((64, 64, 64, 64)), ADAM),
    Case("digits MLP 256x256 SGD 0.05 m0.9", "digits", mlp((256, 256)), SGD),
    Case("digits MLP 256x256 AdamW wd 1e-2", "digits", mlp((256, 256)), {"optimizer": "adamw", "lr": 1e-3,
                                                                        "weight_decay": 1e-2}),
    Case("digits MLP 256x256 dropout 0.2", "digits", mlp((256, 256), dropout=0.2), ADAM),
    Case("digits tanh MLP 128x2 (default init)", "digits", deep(width=128, depth=2, act=nn.Tanh), ADAM),
    Case("digits sigmoid MLP 128 (shallow)", "digits", deep(width=128, depth=1, act=nn.Sigmoid), {**ADAM, "lr": 3e-3}),
    *[Case(f"digits SmallCNN Adam seed {s}", "digits_images", cnn(), ADAM, seed=s) for s in (0, 1)],
    Case("digits SmallCNN 16-32 SGD", "digits_images", cnn((16, 32)), SGD),
    *[Case(f"mnist1d MLP 256x256 Adam seed {s}", "mnist1d", mlp((256, 256)), ADAM, seed=s) for s in (0, 1)],
    Case("mnist1d MLP 128x128 SGD", "mnist1d", mlp((128, 128)), SGD),
    Case("iris MLP 32x32 Adam", "iris", mlp((32, 32)), {**ADAM, "batch_size": 16, "epochs": 60}),
    Case("wine MLP 64x64 Adam", "wine", mlp((64, 64)), {**ADAM, "batch_size": 16, "epochs": 40}),
    Case("breast_cancer MLP 64x64 Adam", "breast_cancer", mlp((64, 64)), {**ADAM, "batch_size": 32}),
    Case("breast_cancer MLP 64x64 SGD", "breast_cancer", mlp((64, 64)), {**SGD, "batch_size": 32}),
    Case("breast_cancer MLP 32 Adam seed 1", "breast_cancer", mlp((32,)), {**ADAM, "batch_size": 32}, seed=1),
    # Small tables, small batches, long enough to reach a near-perfect fit, fit's default 10 %
    # validation split (15 rows on iris, 18 on wine, 57 on breast_cancer): issue 14's setting.
    *[Case(f"{data} MLP 64x64 {name} batch {batch}, 10 % val", data, mlp((64, 64)),
           {**opt, "batch_size": batch, "epochs": epochs}, val_fraction=0.1)
      for data, epochs in (("iris", 150), ("wine", 100), ("breast_cancer", 60))
      for name, opt, batch in (("Adam", ADAM, 16), ("AdamW", ADAMW, 32))],
    # The default model of `trainground diagnose` (models.build_model) at lr 1e-2, batch 16: before
    # the noise floors, iris raised "41 loss spikes" and an overfitting warning here.
    *[Case(f"{data} default MLP {name} lr 1e-2 batch 16, 10 % val", data, default_mlp,
           {**opt, "lr": 1e-2, "batch_size": 16, "epochs": 100}, val_fraction=0.1)
      for data, name, opt in (("iris", "Adam", ADAM), ("wine", "AdamW", ADAMW), ("breast_cancer", "Adam", ADAM))],
]


# ---------------------------------------------------------------- running
# Broken runs train without the Guard's protection (no clipping, spike skip or trust region):
# the Guard exists to contain exploding and diverging runs (benchmarks/stability.py), and the
# question here is whether the checks recognise a pathology as it shows in a plain loop.
# Healthy runs use fit's default Guard, as a user's run would.
UNGUARDED = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)


def run_case(case: Case, threads: int) -> dict[str, Any]:
    train, val = split(case.data, case.val_fraction)
    shifted: list[str] = []
    if case.transform is not None:
        train, val, shifted = case.transform(train, val)
    torch.manual_seed(case.seed)
    model = case.model(train, train.num_classes)
    options = {"epochs": 20, "batch_size": 64, **case.fit}
    config = FitConfig(**options, seed=case.seed, device="cpu", threads=threads)
    diagnosis = DiagnosisCallback(DiagnosisConfig(check_every=CHECK_EVERY), train_data=train, val_data=val)
    callbacks: list[Callback] = [diagnosis] + ([case.breaker()] if case.breaker else [])
    started = time.perf_counter()
    guard = case.guard if case.guard is not None else None if case.healthy else UNGUARDED
    result = fit(model, train, val_data=val, config=config, callbacks=callbacks, guard=guard)
    seconds = time.perf_counter() - started
    warn = [f for f in diagnosis.findings if f.severity >= Severity.WARNING]
    row: dict[str, Any] = {
        "name": case.name, "healthy": case.healthy, "steps": result.steps, "seconds": round(seconds, 2),
        "final": {k: round(v, 4) for k, v in result.final.items()},
        "findings": [_short(f, diagnosis) for f in diagnosis.findings],
        "warnings": sorted({f.check for f in warn}),
    }
    if case.healthy:
        row["false_alarms"] = len(warn)
        return row
    onset = case.onset
    if onset == "best_val":
        val_loss = [h["val_loss"] for h in result.history]
        steps_per_epoch = -(-len(train) // options["batch_size"])
        onset = (int(np.argmin(val_loss)) + 1) * steps_per_epoch
    hits = [f for f in warn if f.check in case.expected]
    top = max((f.severity for f in warn), default=None)
    row.update(onset=onset, expected=list(case.expected), detected=bool(hits))
    if hits:
        first = min(hits, key=lambda f: f.step if f.step is not None else 1 << 62)
        row["first_seen"] = first.step
        row["steps_after_onset"] = None if first.step is None else first.step - int(onset)
        row["reported_at"] = min(diagnosis.reported_at.get((f.check, f.subject), result.steps) for f in hits)
        row["named"] = any(f.severity == top for f in hits)
        if shifted:
            top_features = [t["feature"] for t in first.evidence.get("top_features", [])[:2]]
            row["shifted_features"], row["top_features"] = shifted, top_features
            row["named"] = row["named"] and set(top_features) == set(shifted)
    row["other_checks"] = sorted({f.check for f in warn} - set(case.expected))
    return row


def _short(f: Finding, diagnosis: DiagnosisCallback) -> dict[str, Any]:
    return {"check": f.check, "severity": f.severity.value, "subject": f.subject, "step": f.step,
            "reported_at": diagnosis.reported_at.get((f.check, f.subject)), "message": f.message}


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| pathology | expected check | detected | steps after onset (first seen) | reported at step "
           "(checks every 50) | named | other warnings |", "|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if not r["healthy"]):
        after = r.get("steps_after_onset")
        out.append(f"| {r['name']} | {' / '.join(r['expected'])} | {'yes' if r['detected'] else '**no**'} | "
                   f"{'-' if after is None else after} (onset {r['onset']}) | {r.get('reported_at', '-')} | "
                   f"{'yes' if r.get('named') else '**no**'} | {', '.join(r['other_checks']) or '-'} |")
    out += ["", "| healthy run | steps | final val acc | false alarms (>= warning) | checks |", "|---|---|---|---|---|"]
    for r in (r for r in rows if r["healthy"]):
        out.append(f"| {r['name']} | {r['steps']} | {r['final'].get('val_accuracy', float('nan')):.3f} | "
                   f"{r['false_alarms']} | {', '.join(r['warnings']) or '-'} |")
    broken = [r for r in rows if not r["healthy"]]
    healthy = [r for r in rows if r["healthy"]]
    out += ["", f"pathologies detected: {sum(r['detected'] for r in broken)}/{len(broken)}, "
                f"named: {sum(bool(r.get('named')) for r in broken)}/{len(broken)}; healthy runs with a false alarm: "
                f"{sum(r['false_alarms'] > 0 for r in healthy)}/{len(healthy)} "
                f"({sum(r['false_alarms'] for r in healthy)} findings)"]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run only cases whose name contains one of these strings")
    parser.add_argument("--json", help="write every run's findings to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = PATHOLOGIES + HEALTHY
    if args.only:
        cases = [c for c in cases if any(s in c.name for s in args.only)]
    rows = []
    for case in cases:
        row = run_case(case, args.threads)
        rows.append(row)
        status = (f"false alarms {row['false_alarms']} {row['warnings']}" if case.healthy else
                  f"detected={row['detected']} named={row.get('named')} after={row.get('steps_after_onset')} "
                  f"other={row['other_checks']}")
        print(f"{case.name:55s} {row['seconds']:6.1f}s  {status}", flush=True)
    print()
    print(markdown(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
