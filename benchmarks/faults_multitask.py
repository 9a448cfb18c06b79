"""Fault type x severity on the fault-signal generator: single-task vs multi-task training through ``fit``.

Protocol (fixed before any run):
  data    trainground.data.faults.make_faults, 1024 samples at 4096 Hz;
          train   1600 signals, seed 100, the default FaultDomain (speed 15-40 Hz, gain 0.5-2)
          test_in  800 signals, seed 101, the same domain (i.i.d. reference)
          shifted  800 signals, seed 102, speed 40-50 Hz and gain 2-4 (held out: other speeds and gains
                   than any training sample)
  tasks   fault    the fault type, 12 classes (40 % healthy; cage, broken tooth 2 % each)
          severity 0 (healthy) .. 5, 6 classes (severity s of a fault drawn with p ~ 2^-(s-1))
  model   the built-in 1-D CNN with conv1d_channels (16, 16, 32, 32) (half the default widths: the
          default costs ~30 s/epoch at 2400 signals on this loaded machine); one linear head per
          task on the shared trunk (models.TaskHeads) for the multi-task variants
  variants
          (a) single    two single-task models (one per task), cross-entropy
          (b) sum       one multi-task model, the summed CE (static weights 1, 1)
          (c) unc       (b) with uncertainty weighting (Kendall et al. 2018)
          (d) unc_clip  (c) with per-task gradient clipping: each task's gradient clipped to norm 1.0
                        (the customary clip_grad_norm_ default, chosen before any run) before the sum
          (e) unc_clip_cw  (d) with class weights per task, inverse_sqrt of the training counts
  train   trainground.fit, Adam lr 1e-3, batch 64, 12 epochs, the default Guard, no validation split
          (the last epoch's model is scored; nothing is chosen on a test set); seeds 0, 1, 2 (model
          init and batch order); OMP_NUM_THREADS=1, torch threads 1
  metrics per task and test set: accuracy, macro-F1; rare-fault recall (mean recall of the fault types
          with a share <= 3 %: cage, broken_tooth, oil_whirl, electrical); severe recall (recall of the
          severity classes 4 and 5, the rare and critical ones); mean +- std over seeds; seconds per
          epoch (a loaded machine: compare ratios only)

Usage: OMP_NUM_THREADS=1 python benchmarks/faults_multitask.py [--seeds 0 1 2] [--epochs 12] [--train 1600]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score, recall_score

from trainground.data import IndexedDataset, LabelEncoder, MultiTargetDataset, TaskSpec
from trainground.data.faults import FAULT_SHARE, FAULT_TYPES, FaultDomain, make_faults
from trainground.engine import FitConfig, fit
from trainground.engine.evaluate import predict_logits, predict_task_outputs
from trainground.gradients import TaskGradientConfig
from trainground.losses import LossConfig, build_task_loss
from trainground.models import ModelConfig, build_model, build_multitask_model

RARE = [i for i, share in enumerate(FAULT_SHARE) if share <= 3]
SEVERE = [4, 5]
TASKS = (TaskSpec("fault", "class", len(FAULT_TYPES), tuple(FAULT_TYPES)),
         TaskSpec("severity", "class", 6, tuple(range(6))))
VARIANTS = ("single", "sum", "unc", "unc_clip", "unc_clip_cw")
MODEL = ModelConfig(name="cnn1d", conv1d_channels=(16, 16, 32, 32))


def load(n_train: int) -> dict:
    sets = {
        "train": make_faults(n_train, seed=100),
        "test_in": make_faults(n_train // 2, seed=101),
        "shifted": make_faults(n_train // 2, seed=102, domain=FaultDomain(speed_hz=(40.0, 50.0), gain=(2.0, 4.0))),
    }
    return {k: (torch.from_numpy(d.signals), {"fault": torch.from_numpy(d.fault),
                                              "severity": torch.from_numpy(d.severity)}) for k, d in sets.items()}


def task_scores(pred: np.ndarray, y: np.ndarray, task: str) -> dict:
    classes = list(range(len(FAULT_TYPES) if task == "fault" else 6))
    recall = recall_score(y, pred, labels=classes, average=None, zero_division=0)
    out = {"accuracy": round(float((pred == y).mean()), 4),
           "macro_f1": round(float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)), 4)}
    if task == "fault":
        out["rare_recall"] = round(float(recall[RARE].mean()), 4)
    else:
        out["severe_recall"] = round(float(recall[SEVERE].mean()), 4)
    return out


def fit_config(seed: int, epochs: int) -> FitConfig:
    return FitConfig(epochs=epochs, batch_size=64, lr=1e-3, val_fraction=0.0, seed=seed, device="cpu", threads=1,
                     log_every=1000)


def run_single(seed: int, epochs: int, data: dict) -> tuple[dict, float]:
    x, targets = data["train"]
    preds, seconds = {}, 0.0
    for spec in TASKS:
        labels = targets[spec.name]
        train = IndexedDataset(x, labels, torch.arange(len(x)), LabelEncoder(tuple(range(spec.num_classes or 0))),
                               "signal", "faults")
        torch.manual_seed(seed)
        model = build_model(MODEL, input_shape=(x.shape[1],), num_classes=int(spec.num_classes or 0),
                            train_features=x, kind="signal")
        started = time.perf_counter()
        fit(model, train, config=fit_config(seed, epochs))
        seconds += time.perf_counter() - started
        for split in ("test_in", "shifted"):
            preds.setdefault(split, {})[spec.name] = predict_logits(model, data[split][0]).argmax(1).numpy()
    return preds, seconds


def run_multi(variant: str, seed: int, epochs: int, data: dict) -> tuple[dict, float]:
    x, targets = data["train"]
    train = MultiTargetDataset(x, dict(targets), torch.arange(len(x)), TASKS, kind="signal", name="faults")
    torch.manual_seed(seed)
    model = build_multitask_model(MODEL, input_shape=(x.shape[1],), widths={t.name: t.out_features for t in TASKS},
                                  train_features=x, kind="signal")
    loss = LossConfig(task_weighting="static" if variant == "sum" else "uncertainty")
    if variant == "unc_clip_cw":
        loss = LossConfig(name="weighted_ce", weighting="inverse_sqrt", task_weighting="uncertainty")
    loss_fn = build_task_loss(loss, TASKS, {k: v.numpy() for k, v in targets.items()})
    tasks = TaskGradientConfig(max_norm=1.0) if variant in ("unc_clip", "unc_clip_cw") else None
    started = time.perf_counter()
    fit(model, train, config=fit_config(seed, epochs), loss_fn=loss_fn, tasks=tasks)
    seconds = time.perf_counter() - started
    preds = {}
    for split in ("test_in", "shifted"):
        out = predict_task_outputs(model, data[split][0])
        preds[split] = {t: o.argmax(1).numpy() for t, o in out.items()}
    return preds, seconds


def summary(runs: list[dict]) -> list[dict]:
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        row: dict = {"variant": variant, "seeds": [r["seed"] for r in mine],
                     "seconds_per_epoch": round(statistics.mean(r["seconds_per_epoch"] for r in mine), 2)}
        for split in ("test_in", "shifted"):
            for task, metrics in mine[0][split].items():
                for metric in metrics:
                    values = [r[split][task][metric] for r in mine]
                    row[f"{split}/{task}/{metric}"] = round(statistics.mean(values), 4)
                    row[f"{split}/{task}/{metric}_std"] = round(statistics.pstdev(values), 4)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train", type=int, default=1600)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "faults_multitask.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load(args.train)
    runs = []
    for seed in args.seeds:  # seeds outermost: an interrupted run still has every variant of the first seeds
        for variant in args.variants:
            if variant == "single":
                preds, seconds = run_single(seed, args.epochs, data)
            else:
                preds, seconds = run_multi(variant, seed, args.epochs, data)
            record = {"variant": variant, "seed": seed, "epochs": args.epochs,
                      "seconds_per_epoch": round(seconds / args.epochs, 2)}
            for split in ("test_in", "shifted"):
                record[split] = {t: task_scores(preds[split][t], data[split][1][t].numpy(), t) for t in preds[split]}
            runs.append(record)
            s = record["shifted"]
            print(f"{variant:12s} seed {seed}: shifted fault acc {s['fault']['accuracy']:.3f} f1 "
                  f"{s['fault']['macro_f1']:.3f} rare {s['fault']['rare_recall']:.3f} | severity acc "
                  f"{s['severity']['accuracy']:.3f} f1 {s['severity']['macro_f1']:.3f} severe "
                  f"{s['severity']['severe_recall']:.3f} | {record['seconds_per_epoch']} s/epoch", flush=True)
            result = {"protocol": __doc__.split("Usage:")[0].strip(), "summary": summary(runs), "runs": runs,
                      "machine": "2 shared CPU cores, heavily loaded (about 7 jobs); OMP_NUM_THREADS=1"}
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary(runs), indent=1))


if __name__ == "__main__":
    main()
