"""Issue 15, sixth pass: LSTM adding, 1000 steps without stopping at the target; the eval MSE at the end.

The benchmark stops a run at its target, so it cannot see how a method behaves near a minimum. This
runs four cells (lr 0.012 and 0.03, seeds 0-1) to the end of the budget for no clipping, clip 0.1, the
default Guard and the level-normalised Guard (``guard_level``).

Usage (from benchmarks/): PYTHONPATH=../src:. python stability_arch_past_target.py out.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import stability_arch as S


def main() -> None:
    S.solved = lambda task, metric: False  # never stop early
    task = S.make_tasks()["adding_lstm"]()
    out = {}
    for lr in (float(S.LRS[2]), float(S.LRS[3])):
        for seed in (0, 1):
            row = {m: S.run(task, m, lr, seed)["final_loss"] for m in ("none", "clip0.1", "guard", "guard_level")}
            out[f"lr {lr:.4g} seed {seed}"] = row
            print(f"lr {lr:.4g} seed {seed}", {k: round(v, 5) for k, v in row.items()}, flush=True)
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
