"""The monitors' step cost before and after a change, interleaved in one process.

``diagnosis_overhead.py`` run twice (once per checkout) compares two processes that a loaded
machine slows differently. This script loads the monitor modules of a second checkout
(``--baseline-src``, e.g. a ``git worktree`` of an earlier commit) under other names and
runs, in the same process and round after round: ``fit`` alone, ``fit`` with the
``DiagnosisCallback`` on the baseline's monitors, and on this checkout's. Same recipe as
``diagnosis_overhead.py`` (digits, 64-256-256-10 MLP, Adam, batch 64, 40 epochs, no checks).

Usage: python benchmarks/monitors_ab.py --baseline-src /tmp/base/src [--rounds 9]
       [--sample-every 10] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import diagnosis_overhead as recipe  # noqa: E402

from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig  # noqa: E402

MONITORS = ("activations", "gradients", "history", "representation")


def load_baseline(src: Path) -> dict:
    """The baseline's monitor classes, loaded as ``baseline_<module>`` (they import only
    ``trainground.monitors.base``/``table``, whose interfaces did not change)."""
    classes = {}
    for name in MONITORS:
        path = src / "trainground" / "monitors" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"baseline_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        classes[name] = module
    return classes


def baseline_callback(mods: dict, sample_every: int) -> DiagnosisCallback:
    class Baseline(DiagnosisCallback):
        def on_fit_start(self, state) -> None:
            super().on_fit_start(state)
            self.gradients = mods["gradients"].GradientMonitor(state.model)
            self.activations = mods["activations"].ActivationMonitor(
                state.model, min_samples=self.config.min_dead_samples)
            self.representation = mods["representation"].RepresentationMonitor(
                state.model, max_rows=self.config.representation_rows)
            self.history = mods["history"].LossHistory()
    return Baseline(DiagnosisConfig(checks=(), sample_every=sample_every))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--clock", choices=tuple(recipe.CLOCKS), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = recipe.CLOCKS[args.clock]
    mods = load_baseline(args.baseline_src)
    train = recipe.data()
    variants = {
        "fit": lambda: None,
        "baseline monitors": lambda: baseline_callback(mods, args.sample_every),
        "monitors": lambda: DiagnosisCallback(DiagnosisConfig(checks=(), sample_every=args.sample_every)),
    }
    recipe.run(train, None, 1)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    steps = 0
    for _ in range(args.rounds):
        for name, make in variants.items():
            seconds, steps = recipe.run(train, make(), 1, clock)
            times[name].append(seconds)
    print(f"sample_every={args.sample_every}, {steps} steps, {args.rounds} rounds, clock={args.clock}")
    print("| variant | median s | min s | ms/step (median) | ratio vs fit (median) | ratio vs fit (min) |")
    print("|---|---|---|---|---|---|")
    base_med, base_min = statistics.median(times["fit"]), min(times["fit"])
    for name, values in times.items():
        med, low = statistics.median(values), min(values)
        print(f"| {name} | {med:.3f} | {low:.3f} | {1000 * med / steps:.3f} | {med / base_med:.3f} "
              f"| {low / base_min:.3f} |")
    # Per-round ratios (each variant against the fit of its own round): the drift-free figure.
    for name in ("baseline monitors", "monitors"):
        ratios = [v / f for v, f in zip(times[name], times["fit"], strict=True)]
        print(f"{name}: per-round ratio median {statistics.median(ratios):.3f}")
    print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in times.items()}))


if __name__ == "__main__":
    main()
