"""Fault-injection sweep: kill -9 at seeded file commits of fit, diagnose and repair, then recover.

For each command, one uninterrupted reference run lists its file commits (``os.replace``:
checkpoints, their digests, the manifest, Parquet parts, outputs). Kill points are drawn
from that list with a fixed seed, each with a phase (just before or just after the
rename). After each kill the run is recovered as a user would: ``fit --resume`` (or
``--overwrite`` when no checkpoint was complete), the same command with ``--overwrite``
for diagnose and repair. A kill "survives" when the recovered result equals the
reference (weights and metrics.jsonl; sample_issues.csv; repaired.csv and changes.csv)
and the input, config and notes files are byte-identical.

    PYTHONPATH=src .venv/bin/python benchmarks/fault_injection.py --kills 10 --seed 0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("scenario", ROOT / "tests" / "faults" / "scenario.py")
scenario = importlib.util.module_from_spec(_spec)
sys.modules["scenario"] = scenario
_spec.loader.exec_module(scenario)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10, help="kill points per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="fit,diagnose,repair")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fault_injection.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = {"seed": args.seed, "kills_per_command": args.kills, "commands": {}}
    with tempfile.TemporaryDirectory(prefix="tg-faults-") as tmp:
        root = Path(tmp)
        inputs = scenario.make_inputs(root / "inputs")
        for kind in args.kinds.split(","):
            started = time.perf_counter()
            commits = scenario.commits(kind, inputs, root / f"{kind}-reference")
            reference = scenario.result_of(kind, root / f"{kind}-reference")
            points = sorted(rng.sample(range(1, len(commits) + 1), min(args.kills, len(commits))))
            outcomes = []
            for point in points:
                phase = rng.choice(["before", "after"])
                out = root / f"{kind}-{point}-{phase}"
                outcome = scenario.kill_and_recover(kind, inputs, out, reference, point, phase)
                outcomes.append({**asdict(outcome), "survived": outcome.survived,
                                 "commit": Path(commits[point - 1]).relative_to(root / f"{kind}-reference").as_posix()})
                shutil.rmtree(out, ignore_errors=True)
                print(kind, point, phase, outcomes[-1]["commit"], "survived" if outcome.survived else outcome,
                      flush=True)
            results["commands"][kind] = {
                "commits_in_reference": len(commits), "kills_tried": len(outcomes),
                "killed": sum(o["killed"] for o in outcomes), "survived": sum(o["survived"] for o in outcomes),
                "seconds": round(time.perf_counter() - started, 1), "outcomes": outcomes,
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for kind, r in results["commands"].items():
        print(f"| {kind} | {r['commits_in_reference']} | {r['kills_tried']} | {r['killed']} | {r['survived']} |")


if __name__ == "__main__":
    main()
