"""Issue 15, sixth pass: LSTM adding, 1000 steps without stopping at the target; the eval MSE at the end.

Usage (from benchmarks/): PYTHONPATH=../src:. python stability_arch_past_target.py out.json
"""
import json
import sys

import stability_arch as S

S.solved = lambda task, metric: False  # never stop early
t = S.make_tasks()["adding_lstm"]()
out = {}
for lr in (float(S.LRS[2]), float(S.LRS[3])):
    for seed in (0, 1):
        row = {m: S.run(t, m, lr, seed)["final_loss"] for m in ("none", "clip0.1", "guard", "guard_level")}
        out[f"lr {lr:.4g} seed {seed}"] = row
        print(f"lr {lr:.4g} seed {seed}", {k: round(v, 5) for k, v in row.items()}, flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
