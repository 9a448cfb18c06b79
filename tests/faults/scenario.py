"""Fault-injection scenarios shared by tests/test_fault_injection.py and benchmarks/fault_injection.py.

A scenario runs a command once uninterrupted (the reference), then again killed with
``kill -9`` at the N-th file commit, then recovers as a user would (``fit --resume``, or
the same command with ``--overwrite`` where there is no resume), and checks that the
result is identical to the reference and that the user's files beside and inside the
input folder are untouched.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KILLER = Path(__file__).with_name("kill_at.py")
SRC = Path(__file__).resolve().parents[2] / "src"
CONFIG = "fit: {epochs: 3, batch_size: 16, checkpoint_every: 3, threads: 1, val_fraction: 0.2}\n"


def make_inputs(root: Path) -> dict[str, Path]:
    """A small table, a config and a user's notes file beside them (all must survive)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 90
    y = np.arange(n) % 3
    frame = pd.DataFrame({"f1": rng.normal(size=n) + y, "f2": rng.normal(size=n) - y,
                          "f3": rng.normal(size=n), "y": [f"c{v}" for v in y]})
    frame.loc[rng.choice(n, 9, replace=False), "y"] = "c0"  # a little label noise for diagnose/repair
    paths = {"data": root / "data.csv", "config": root / "cfg.yaml", "notes": root / "notes.txt"}
    frame.to_csv(paths["data"], index=False)
    paths["config"].write_text(CONFIG)
    paths["notes"].write_text("the user's own notes\n")
    return paths


def command(kind: str, inputs: dict[str, Path], out: Path) -> list[str]:
    base = [str(inputs["data"]), "--target", "y", "--out", str(out)]
    if kind == "fit":
        return ["fit", *base, "--config", str(inputs["config"])]
    if kind == "diagnose":
        return ["diagnose", *base, "--epochs", "3"]
    if kind == "repair":
        return ["repair", *base, "--epochs", "3", "--rounds", "1"]
    raise ValueError(kind)


def _run(args: list[str], *, kill: tuple[int, str] | None = None, trace: bool = False,
         timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC))
    head = ["trace", "-"] if trace else [str(kill[0]), kill[1]] if kill else ["0", "never"]
    return subprocess.run([sys.executable, str(KILLER), *head, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def commits(kind: str, inputs: dict[str, Path], out: Path) -> list[str]:
    """The reference run: every committed path in order (its exit status must be 0)."""
    done = _run(command(kind, inputs, out), trace=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return re.findall(r"^replace \d+ (.*)$", done.stderr, flags=re.M)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def result_of(kind: str, out: Path) -> dict[str, object]:
    """What must be identical between the reference and a recovered run."""
    if kind == "fit":
        from safetensors.torch import load_file

        weights = load_file(out / "model.safetensors")
        return {"weights": {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in weights.items()},
                "metrics": (out / "metrics.jsonl").read_text()}
    if kind == "diagnose":
        return {"issues": (out / "sample_issues.csv").read_text()}
    return {"repaired": (out / "repaired.csv").read_text(), "changes": (out / "changes.csv").read_text()}


@dataclass
class Outcome:
    kind: str
    kill: int
    phase: str
    killed: bool  # the process did die at that point (the run may have fewer commits)
    recovered: bool
    identical: bool
    inputs_intact: bool
    detail: str = ""

    @property
    def survived(self) -> bool:
        return self.recovered and self.identical and self.inputs_intact


def kill_and_recover(kind: str, inputs: dict[str, Path], out: Path, reference: dict[str, object],
                     kill: int, phase: str) -> Outcome:
    before = {name: digest(path) for name, path in inputs.items()}
    args = command(kind, inputs, out)
    first = _run(args, kill=(kill, phase))
    killed = first.returncode == -signal.SIGKILL
    if kind == "fit":
        again = _run([*args[:-2], "--resume"])  # --resume takes no --config: the run has its own
        if again.returncode != 0 and ("no checkpoint" in again.stderr or "no such run" in again.stderr
                                      or "not a trainground run" in again.stderr
                                      or "config.yaml: missing" in again.stderr
                                      or "no intact checkpoint" in again.stderr):
            again = _run([*args, "--overwrite"])  # killed before the first checkpoint: start again
    else:
        again = _run([*args, "--overwrite"])
    recovered = again.returncode == 0
    identical = recovered and result_of(kind, out) == reference
    intact = {name: digest(path) for name, path in inputs.items()} == before
    detail = "" if recovered else again.stderr.strip().splitlines()[-1][:300] if again.stderr.strip() else ""
    return Outcome(kind, kill, phase, killed, recovered, identical, intact, detail)
