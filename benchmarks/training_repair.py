"""Automatic training repair on the broken runs of the training-diagnosis suite, and on its healthy runs.

Protocol (fixed before any run):
  runs    the cases of benchmarks/diagnosis_suite.py, built by its own builders (models,
          fit options, mid-run breakers, guard: broken runs unguarded, healthy runs with the
          default Guard, exactly as the suite trains them). The two distribution-shift cases
          are left out: a shifted validation split is a data problem, no training action
          applies to it.
  split   the suite's 80/20 split (seed 0); its 20 % is halved (stratified, seed 0) into a
          validation half, which alone chooses the best round, and a test half, only reported.
  repair  repair.training.repair_training with every training policy, at most 3 repaired
          rounds, the suite's diagnosis (checks every 50 steps); a mid-run breaker is
          attached again in every round at the same global step (it stands for a bug in the
          user's loop that retraining does not remove; a round resumed from a checkpoint of
          step s meets it s steps earlier in its own count).
  report  validation and test accuracy of round 0 (before) and of the best round (after),
          the actions applied, trainings used (epochs trained / epochs of one training).
          A case counts as repaired when the best round's validation accuracy beats round 0's
          by more than one validation sample.

Usage: python benchmarks/training_repair.py [--threads 1] [--only NAME ...] [--json benchmarks/results/training_repair.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnosis_suite import CHECK_EVERY, HEALTHY, PATHOLOGIES, UNGUARDED, Case, split

from trainground.data import IndexedDataset, stratified_split
from trainground.diagnosis import DiagnosisConfig, Severity
from trainground.engine import FitConfig, RunConfig
from trainground.gradients import GuardConfig
from trainground.repair.training import repair_training

MAX_ROUNDS = 3


def val_test(holdout: IndexedDataset) -> tuple[IndexedDataset, IndexedDataset]:
    val_pos, test_pos = stratified_split(holdout.labels.numpy(), fraction=0.5, seed=0)
    return holdout.subset(val_pos), holdout.subset(test_pos)


def breaker(case: Case, plan: Any) -> Any:
    """The case's mid-run breaker, at the same global step in a round resumed from a checkpoint
    (the resumed fit counts its steps from 0): the bug in the user's loop is still there."""
    made = case.breaker()
    made.step = max(1, made.step - int(plan.extra.get("resume_from", {}).get("step", 0)))
    return made


def run_case(case: Case, threads: int) -> dict[str, Any]:
    train, holdout = split(case.data)
    val, test = val_test(holdout)
    if case.transform is not None:
        train, val, _ = case.transform(train, val)
    options = {"epochs": 20, "batch_size": 64, **case.fit}
    config = RunConfig(fit=FitConfig(**options, seed=case.seed, device="cpu", threads=threads),
                       guard=GuardConfig() if case.healthy else UNGUARDED)
    started = time.perf_counter()
    result = repair_training(
        lambda t: case.model(t, t.num_classes), train, val_data=val, test_data=test, config=config,
        max_rounds=MAX_ROUNDS, diagnosis=DiagnosisConfig(check_every=CHECK_EVERY),
        callbacks=(lambda plan: [breaker(case, plan)]) if case.breaker else None,
    )
    seconds = time.perf_counter() - started
    first, best = result.rounds[0], result.best
    return {
        "name": case.name, "healthy": case.healthy, "expected": list(case.expected),
        "warnings": sorted({f.check for f in first.findings if f.severity >= Severity.WARNING}),
        "before": {"val": first.val_accuracy, "test": first.test_accuracy},
        "after": {"val": best.val_accuracy, "test": best.test_accuracy},
        "best_round": result.best_round, "rounds": len(result.rounds), "trainings": round(result.trainings, 2),
        "actions": [{"round": k, "action": a.action, "policy": a.policy, "target": a.target, "value": a.value,
                     "reason": a.reason} for k, a in result.actions],
        "stopped": result.stopped, "repaired": (best.val_accuracy or 0) - (first.val_accuracy or 0) > 1.0 / len(val),
        "val_size": len(val), "seconds": round(seconds, 1),
    }


def _short(action: dict[str, Any]) -> str:
    value = action["value"]
    if action["action"] == "set_lr":
        text = f"lr {value:.3g}"
    elif action["action"] == "tighten_clip":
        text = "Guard " + ", ".join(f"{k}={v}" for k, v in value.items())
    elif action["action"] == "rollback":
        text = f"resume step {action['target']}" + (f", skip {len(value['skip_samples'])}" if value["skip_samples"] else "")
    elif action["action"] == "reinit_units":
        text = f"reinit {'all' if value == 'all' else len(value)} units of {action['target']}"
    else:
        text = f"{action['target']} -> {value}"
    return f"r{action['round']}: {text}"


def markdown(rows: list[dict[str, Any]]) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"
    out = [("| broken run | warnings of round 0 | val before -> after | test before -> after | actions (round: what) "
           "| trainings | repaired |"), "|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if not r["healthy"]):
        out.append(f"| {r['name']} | {', '.join(r['warnings']) or '-'} | {pct(r['before']['val'])} -> "
                   f"{pct(r['after']['val'])} | {pct(r['before']['test'])} -> {pct(r['after']['test'])} | "
                   f"{'; '.join(_short(a) for a in r['actions']) or '-'} | {r['trainings']} | "
                   f"{'yes' if r['repaired'] else '**no**'} |")
    out += ["", "| healthy run | val before -> after | test before -> after | actions | trainings |",
            "|---|---|---|---|---|"]
    for r in (r for r in rows if r["healthy"]):
        out.append(f"| {r['name']} | {pct(r['before']['val'])} -> {pct(r['after']['val'])} | "
                   f"{pct(r['before']['test'])} -> {pct(r['after']['test'])} | "
                   f"{'; '.join(_short(a) for a in r['actions']) or '-'} | {r['trainings']} |")
    broken, healthy = [r for r in rows if not r["healthy"]], [r for r in rows if r["healthy"]]
    touched = [r for r in healthy if r["actions"]]
    out += ["", (f"broken runs repaired: {sum(r['repaired'] for r in broken)}/{len(broken)}; healthy runs with an "
                f"action: {len(touched)}/{len(healthy)}; healthy runs whose accuracy changed: "
                f"{sum(r['after'] != r['before'] for r in healthy)}/{len(healthy)}")]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run only cases whose name contains one of these strings")
    parser.add_argument("--json", default="benchmarks/results/training_repair.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [c for c in PATHOLOGIES if "distribution_shift" not in c.expected] + HEALTHY
    if args.only:
        cases = [c for c in cases if any(s in c.name for s in args.only)]
    rows = []
    for case in cases:
        row = run_case(case, args.threads)
        rows.append(row)
        print(f"{case.name:55s} {row['seconds']:6.1f}s val {row['before']['val']:.3f} -> {row['after']['val']:.3f} "
              f"actions {[a['action'] for a in row['actions']]} ({row['stopped']})", flush=True)
    print()
    print(markdown(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
