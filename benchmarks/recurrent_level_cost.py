"""Issue 15, sixth pass: the Guard's step cost on the LSTM adding model, recurrent_level "off" vs "fall".

Interleaved rounds of 50 steps each (thread clock), same batches; prints the median ms/step and the
median (min, max) of the per-round ratio fall/off. Usage (from benchmarks/):
PYTHONPATH=../src:. python recurrent_level_cost.py
"""
import statistics
import time

import torch
from trainground.gradients import Guard, GuardConfig

import stability_arch as S

t = S.make_tasks()["adding_lstm"]()
def make(mode):
    torch.manual_seed(0); m = t.make_model(); o = torch.optim.Adam(m.parameters(), lr=5e-3)
    return m, Guard(m, o, config=GuardConfig(recurrent_level=mode))
runs = {"off": make("off"), "fall": make("fall")}
g = torch.Generator().manual_seed(0); batches = [t.batch(g) for _ in range(50)]
res = {k: [] for k in runs}
for rnd in range(8):
    for k, (m, guard) in runs.items():
        t0 = time.thread_time()
        for x, y in batches:
            guard.backward(t.loss(m(x), y), batch_size=len(y)); guard.step()
        res[k].append((time.thread_time() - t0) / len(batches))
ratios = [f / o for f, o in zip(res["fall"], res["off"])]
print({k: round(statistics.median(v) * 1e3, 3) for k, v in res.items()}, "ms/step; fall/off median", round(statistics.median(ratios), 3), "range", round(min(ratios), 3), round(max(ratios), 3))
