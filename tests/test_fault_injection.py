"""kill -9 at a chosen point of fit, then recover as a user would.

The points are file commits of the reference run (see tests/faults/kill_at.py): inside a
checkpoint write, between a checkpoint and its digest, inside the final model or an output
write. The recovered run must equal the uninterrupted one, and the user's files (the input,
the config, notes beside them) must be untouched. benchmarks/fault_injection.py sweeps
many more points.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("scenario", Path(__file__).parent / "faults" / "scenario.py")
scenario = importlib.util.module_from_spec(_spec)
sys.modules["scenario"] = scenario  # dataclasses look their module up
_spec.loader.exec_module(scenario)

pytestmark = pytest.mark.slow


def _nth(commits: list[str], suffix: str, n: int) -> int:
    return [i for i, path in enumerate(commits, start=1) if path.endswith(suffix)][n - 1]


# One point here: each costs three interpreter starts (about 6 s of CPU each). The benchmark
# sweeps fit, diagnose and repair at many more, model, manifest and output writes included.
@pytest.mark.parametrize("kind, point, n, phase", [
    # the second checkpoint is there, its digest not yet: --resume falls back to the first
    ("fit", ".pt", 2, "after"),
])
def test_kill_9_then_recover_gives_the_same_result(tmp_path, kind, point, n, phase):
    inputs = scenario.make_inputs(tmp_path / "inputs")
    commits = scenario.commits(kind, inputs, tmp_path / "reference")
    reference = scenario.result_of(kind, tmp_path / "reference")
    outcome = scenario.kill_and_recover(kind, inputs, tmp_path / "out", reference, _nth(commits, point, n), phase)
    assert outcome.killed, outcome
    assert outcome.survived, outcome
