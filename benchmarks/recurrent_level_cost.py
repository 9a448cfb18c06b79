"""Issue 15, sixth pass: the Guard's step cost on the LSTM adding model, recurrent_level "off" vs "fall".

Interleaved rounds of 50 steps each (thread clock), same batches; prints the median ms/step and the
median (min, max) of the per-round ratio fall/off. Usage (from benchmarks/):
PYTHONPATH=../src:. python recurrent_level_cost.py
"""

from __future__ import annotations

import statistics
import time

import stability_arch as S
import torch

from trainground.gradients import Guard, GuardConfig


def main(rounds: int = 8, steps: int = 50) -> None:
    task = S.make_tasks()["adding_lstm"]()

    def make(mode: str) -> tuple[torch.nn.Module, Guard]:
        torch.manual_seed(0)
        model = task.make_model()
        opt = torch.optim.Adam(model.parameters(), lr=5e-3)
        return model, Guard(model, opt, config=GuardConfig(recurrent_level=mode))

    runs = {"off": make("off"), "fall": make("fall")}
    g = torch.Generator().manual_seed(0)
    batches = [task.batch(g) for _ in range(steps)]
    res: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, (model, guard) in runs.items():
            t0 = time.thread_time()
            for x, y in batches:
                guard.backward(task.loss(model(x), y), batch_size=len(y))
                guard.step()
            res[k].append((time.thread_time() - t0) / len(batches))
    ratios = [f / o for f, o in zip(res["fall"], res["off"], strict=True)]
    print({k: round(statistics.median(v) * 1e3, 3) for k, v in res.items()}, "ms/step; fall/off median",
          round(statistics.median(ratios), 3), "range", round(min(ratios), 3), round(max(ratios), 3))


if __name__ == "__main__":
    main()
