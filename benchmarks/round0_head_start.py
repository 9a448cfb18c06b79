"""How far ahead of a repair round does round 0 start on the frozen validation rows, before any edit?

Round 0 of the repair loop chooses its early-stopping epoch by the loss on the frozen rows (the
rows that later judge every round) and trains on 90 % of the split; a repair round leaves the
frozen rows out, draws its own validation split and trains on 81 %. Here, per (noise, seed) of
benchmark B (digits, anchors' split and noise, seeds 0-2): round 0 as the loop runs it, and a
round with *no* edit trained the way a repair round is (``DataRounds.train`` with the initial
state). Reported: both models' accuracy on the frozen rows (noisy labels) and on the clean test
split, and the paired discordant rows on the frozen split. Diagnostic only: nothing here feeds a
decision of the repair.

Usage: python benchmarks/round0_head_start.py [--datasets digits] [--noise sym40 sym20 asym30]
       [--seeds 0 1 2] [--out benchmarks/results/round0_head_start.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from repair_accuracy import ANCHORS, dataset, load_anchor, recipe

from trainground.data import stratified_split
from trainground.engine import RunConfig
from trainground.recipes.diagnose import diagnose_dataset
from trainground.repair.loop import DataRounds
from trainground.repair.selection import compare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=["digits"])
    ap.add_argument("--noise", nargs="*", default=["sym40", "sym20", "asym30"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "round0_head_start.json")
    args = ap.parse_args()
    common = load_anchor("common", ANCHORS)
    common.setup_torch(1)
    rows = []
    for ds in args.datasets:
        x, xte, y, yte = common.load_dataset(ds)
        for noise in args.noise:
            kind, rate = common.NOISE_SETTINGS[noise]
            for seed in args.seeds:
                y_noisy, _ = common.inject_noise(y, kind, rate, seed)
                data, test = dataset(x, y_noisy, "bench"), dataset(xte, yte, "test")
                config = RunConfig(fit=recipe(seed, 1))
                # The loop's frozen split (repair_loop: stratified, fit.val_fraction, fit.seed).
                _, val_pos = stratified_split(data.labels.numpy(), fraction=config.fit.val_fraction, seed=seed)
                frozen = np.zeros(len(data), dtype=bool)
                frozen[val_pos] = True
                rounds = DataRounds(data, frozen, diagnose=diagnose_dataset, config=config, test=test, folder=None,
                                    data_policies=None, training_policies=None, repair_loss="gce",
                                    extra_callbacks=(), say=lambda *a, **k: None)
                zero = rounds.train(0)
                no_edit = rounds.train(1)  # nothing planned: the initial state, trained as a repair round is
                paired = compare(zero.scores, no_edit.scores)
                row = {"data": ds, "noise": noise, "seed": seed,
                       "round0_frozen": zero.metrics["val_accuracy"], "no_edit_frozen": no_edit.metrics["val_accuracy"],
                       "round0_test": zero.metrics["test_accuracy"], "no_edit_test": no_edit.metrics["test_accuracy"],
                       "no_edit_wins": paired.wins, "no_edit_losses": paired.losses}
                rows.append(row)
                print(json.dumps(row), flush=True)
    gap = {k: float(np.mean([r[f"round0_{k}"] - r[f"no_edit_{k}"] for r in rows])) for k in ("frozen", "test")}
    print(f"round 0 minus the no-edit repair round, mean: frozen {100 * gap['frozen']:+.2f} points, "
          f"test {100 * gap['test']:+.2f} points")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "mean_gap": gap}, indent=1) + "\n")


if __name__ == "__main__":
    main()
