"""Benchmark: trainground tune (TPE + median pruner + diagnosis-aware pruning) against Optuna's
defaults without diagnosis-aware pruning (TPE + median pruner) and against random search
(no pruning), at a fixed budget: the same number of trials of the same number of epochs.

For each dataset and sampler seed the three variants run back to back (A, B, C, A, B, C,
...) in one process, each into its own tune folder. Reported per variant: the best
validation accuracy reached, the compute spent (epochs trained, optimizer steps, seconds
of training), and the trials pruned per reason. The search space is ``tune``'s default
(lr 1e-5..1 log, Adam/AdamW/SGD, batch 32/64/128, widths, weight decay, Guard clipping and
spike skip on/off, label smoothing), chosen before any measurement.

    OMP_NUM_THREADS=1 python benchmarks/tune.py --trials 12 --epochs 6 --seeds 0 1

The machine is shared and loaded: seconds are indicative; epochs and steps are exact.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from trainground.tune.config import TuneConfig
from trainground.tune.space import default_space
from trainground.tune.study import tune

# "guarded": the base config as fit runs it (the Guard's defaults: AutoClip, spike skip, trust
# region). "unguarded": the Guard's protections off, as a plain PyTorch loop trains; what a
# tuner sees when the runs it launches can diverge.
SCENARIOS = {
    "guarded": {},
    "unguarded": {"guard": {"percentile": None, "spike_z": None, "trust_region": False}},
}
VARIANTS = {
    "tune (TPE + median + diagnosis pruning)": {"sampler": "tpe", "pruner": "median", "diagnosis_pruning": True},
    "Optuna defaults (TPE + median)": {"sampler": "tpe", "pruner": "median", "diagnosis_pruning": False},
    "random search (no pruning)": {"sampler": "random", "pruner": "none", "diagnosis_pruning": False},
}


def run_variant(source: str, scenario: str, name: str, options: dict, *, trials: int, epochs: int, seed: int,
                root: Path) -> dict:
    base = {"data": {"source": source}, "fit": {"epochs": epochs, "seed": 0, "threads": 1}, **SCENARIOS[scenario]}
    out = root / (f"{source.split(':')[-1]}-{scenario}-{seed}-{options['sampler']}-{options['pruner']}-"
                  f"{options['diagnosis_pruning']}")
    started = time.perf_counter()
    result = tune(base, out=out, options=TuneConfig(trials=trials, seed=seed, **options), space=default_space())
    wall = time.perf_counter() - started
    s = result.summary
    values = [t.value for t in result.study.get_trials() if t.value is not None and t.state.name == "COMPLETE"]
    return {"dataset": source, "scenario": scenario, "variant": name, "seed": seed, "best_val_accuracy": s.get("best", {}).get("value"),
            "completed": s["states"].get("complete", 0), "pruned": s["states"].get("pruned", 0),
            "failed": s["states"].get("fail", 0), "pruned_by_reason": s["pruned_by_reason"],
            "epochs": s["compute"]["epochs"], "steps": s["compute"]["steps"],
            "train_seconds": s["compute"]["seconds"], "wall_seconds": round(wall, 2),
            "budget_epochs": trials * epochs, "completed_values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["builtin:digits", "builtin:mnist1d"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tune.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-tune-bench-") as tmp:
        for source in args.datasets:
            for scenario in args.scenarios:
                for seed in args.seeds:
                    for name, options in VARIANTS.items():
                        row = run_variant(source, scenario, name, options, trials=args.trials, epochs=args.epochs,
                                          seed=seed, root=Path(tmp))
                        rows.append(row)
                        print(json.dumps({k: v for k, v in row.items() if k != "completed_values"}), flush=True)
                        _save(args, rows)


def _save(args: argparse.Namespace, rows: list[dict]) -> None:
    """Written after every study, so a killed run keeps what it measured."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": f"OMP_NUM_THREADS=1 python benchmarks/tune.py --trials {args.trials} --epochs {args.epochs} "
                   f"--seeds {' '.join(map(str, args.seeds))} --datasets {' '.join(args.datasets)} "
                   f"--scenarios {' '.join(args.scenarios)}",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "note": "shared 2-core machine under load from other processes: seconds are indicative",
        "rows": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
