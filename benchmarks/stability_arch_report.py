"""Benchmark C, extended (issue 15, sixth pass): the fixed-threshold baseline out of sample, and a
divergence rule that does not count a flat run.

Reads stored ``stability_arch.py`` JSONs (no training) and prints, per task and seed group:

* **Best fixed threshold, in sample and out of sample.** ``stability_arch.py`` picks the best of
  ``clip_grad_norm_`` at 0.1 / 1 / 10 (most runs solved, then fewest median steps) on the very
  runs it then scores: an oracle, optimistically biased by the selection. Out of sample, the
  threshold is chosen on the OTHER seed groups of the same task (pooled; the same rule) and scored
  on this one, which is what a user who tuned the threshold on earlier runs would get. Both are
  reported, side by side; the in-sample oracle stays the criterion of issue 15.
* **Divergences, old rule and new rule.** Old (``stability_arch.py``): a non-finite loss, or a
  final eval loss above the initial one. New (written in benchmarks/README.md before any count
  was made with it): a non-finite loss, or a final eval loss above the initial one by more than
  ``DIVERGENCE_SE`` standard errors of the initial eval loss (the spread of the per-sample losses
  over the fixed eval set / sqrt(n)). The tolerance is a property of the (task, seed) cell, fixed
  before training and the same for every method: the eval set's own resolution of the start loss.
  Runs stored before this pass hold no standard error; it is recomputed here from the seeded
  initial model (the stored initial loss is checked to match).

Usage:
    PYTHONPATH=src python benchmarks/stability_arch_report.py TASK:GROUP=a.json,b.json ...
    (each TASK:GROUP names the JSONs holding that task's runs on that seed group; later files
    override earlier ones per method; ``--rename old=new`` relabels a method)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import stability_arch as S
import torch

DIVERGENCE_SE = 2.0  # two standard errors: the significance level of every gate of this codebase
_init_se_cache: dict[tuple[str, int], tuple[float, float]] = {}


def init_noise(task_name: str, seed: int) -> tuple[float, float]:
    """(initial eval loss, its standard error) of the seeded initial model of ``task_name``."""
    key = (task_name, seed)
    if key not in _init_se_cache:
        task = S.make_tasks()[task_name]()
        torch.manual_seed(seed)
        model = task.make_model()
        samples = S.per_sample_loss(model, task)
        _init_se_cache[key] = (float(samples.mean()), S.standard_error(samples))
    return _init_se_cache[key]


def diverged_new(task_name: str, run: dict) -> bool:
    if run["nonfinite_step"] is not None or run["final_loss"] is None:
        return True
    se = run.get("init_loss_se")
    if se is None:
        init, se = init_noise(task_name, run["seed"])
        if not math.isclose(init, run["init_loss"], rel_tol=1e-4, abs_tol=1e-6):
            raise RuntimeError(f"{task_name} seed {run['seed']}: recomputed initial loss {init} "
                               f"!= stored {run['init_loss']}")
    return run["final_loss"] > run["init_loss"] + DIVERGENCE_SE * se


def solved_new(task_name: str, run: dict) -> bool:
    """Solved = target met and not diverged (by the new rule)."""
    return run["steps_to_target"] is not None and not diverged_new(task_name, run)


def load(specs: list[str], renames: dict[str, str]) -> dict[str, dict[str, dict[str, list[dict]]]]:
    """{task: {group: {method: runs}}}."""
    out: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for spec in specs:
        key, files = spec.split("=", 1)
        task, group = key.split(":")
        methods = out.setdefault(task, {}).setdefault(group, {})
        for f in files.split(","):
            for name, v in json.loads(Path(f).read_text())["results"][task].items():
                methods[renames.get(name, name)] = v["runs"]
    return out


def pick_clip(runs_by_clip: dict[str, list[dict]]) -> str:
    """stability_arch.best_clip's rule: most solved, then fewest median steps of the solved runs."""
    def key(m: str) -> tuple[int, float]:
        runs = runs_by_clip[m]
        steps = [r["steps_to_target"] for r in runs if r["solved"]]
        return (-len(steps), statistics.median(steps) if steps else math.inf)
    return min(runs_by_clip, key=key)


def report(data: dict, methods: list[str]) -> None:
    print("| task | seeds | " + " | ".join(methods) + " | best fixed, in sample | best fixed, out of sample "
          "(chosen on) |")
    print("|---|---|" + "---|" * len(methods) + "---|---|")
    for task, groups in data.items():
        for group, rows in groups.items():
            clips = {m: r for m, r in rows.items() if m.startswith("clip")}
            others = {g: {m: r for m, r in gr.items() if m.startswith("clip")} for g, gr in groups.items()
                      if g != group}
            cells = []
            for m in methods:
                runs = rows.get(m)
                if runs is None:
                    cells.append("-")
                    continue
                old_s, old_d = sum(r["solved"] for r in runs), sum(r["diverged"] for r in runs)
                new_s = sum(solved_new(task, r) for r in runs)
                new_d = sum(diverged_new(task, r) for r in runs)
                div = f"{old_d}" if old_d == new_d else f"{old_d}->{new_d}"
                sol = f"{old_s}" if old_s == new_s else f"{old_s}->{new_s}"
                cells.append(f"{sol}/{len(runs)} ({div} div)" if old_d or new_d else f"{sol}/{len(runs)}")
            best_in = pick_clip(clips) if clips else None
            ins = f"{best_in} {sum(r['solved'] for r in clips[best_in])}/8" if best_in else "-"
            pooled = {m: [r for g in others.values() for r in g.get(m, [])] for m in clips}
            pooled = {m: r for m, r in pooled.items() if r}
            if pooled and len({len(r) for r in pooled.values()}) == 1:
                chosen = pick_clip(pooled)
                oos = f"{chosen} {sum(r['solved'] for r in clips[chosen])}/8 ({', '.join(sorted(others))})"
            else:
                oos = "-"
            print(f"| {task} | {group} | " + " | ".join(cells) + f" | {ins} | {oos} |")


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p of ``wins`` against ``losses`` discordant cells (p = 1/2 each)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(max(wins, losses), n + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(data: dict, a: str, b: str) -> None:
    """Per task, over every seed group holding both: cells only ``a`` solves, only ``b`` solves."""
    for task, groups in data.items():
        pairs = [(ra, rb) for rows in groups.values() if a in rows and b in rows
                 for ra, rb in zip(rows[a], rows[b], strict=True)]
        if not pairs:
            continue
        only_a = sum(solved_new(task, x) and not solved_new(task, y) for x, y in pairs)
        only_b = sum(solved_new(task, y) and not solved_new(task, x) for x, y in pairs)
        print(f"{task}: {len(pairs)} cells; only {a} {only_a}, only {b} {only_b}, "
              f"sign test p = {sign_test(only_a, only_b):.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="+", metavar="TASK:GROUP=JSON[,JSON]")
    ap.add_argument("--methods", nargs="+", default=["none", "clip0.1", "clip1", "clip10", "guard"])
    ap.add_argument("--rename", nargs="*", default=[], metavar="OLD=NEW")
    ap.add_argument("--paired", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="also compare two methods cell by cell (pooled over seed groups)")
    args = ap.parse_args()
    data = load(args.specs, dict(r.split("=") for r in args.rename))
    report(data, args.methods)
    for a, b in args.paired:
        paired(data, a, b)


if __name__ == "__main__":
    main()
