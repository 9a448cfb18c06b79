"""Two source trees measured in alternating worker processes, so both see the same machine load.

Shared by ``overhead_ab.py`` and ``step_cost_ab.py``: the driver runs ``script --worker FILE
*args`` once per tree and round (before, this, before, this, ...), each process importing
``trainground`` from its tree (``PYTHONPATH``) with one OpenMP thread, and collects the JSON each
worker writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def trees(this_src: Path, baseline_src: Path | None) -> dict[str, Path]:
    """``{"before": baseline, "this": this}`` (only ``"this"`` without a baseline)."""
    out = {"this": this_src}
    return out if baseline_src is None else {"before": baseline_src.resolve(), **out}


def alternate(script: str, sources: dict[str, Path], args: list[str], rounds: int, *,
              quiet: bool = False) -> tuple[dict[str, list[dict]], list[float]]:
    """Per tree, the JSON of each of its ``rounds`` workers; and the 1-minute load after each."""
    per_tree: dict[str, list[dict]] = {name: [] for name in sources}
    loads: list[float] = []
    quiet_io = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
    with tempfile.TemporaryDirectory(prefix="ab_trees_") as scratch:  # the workers' result file
        out = Path(scratch) / "worker.json"
        for round_ in range(rounds):
            for name, src in sources.items():
                env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
                subprocess.run([sys.executable, script, "--worker", str(out), *args], env=env, check=True, **quiet_io)
                per_tree[name].append(json.loads(out.read_text()))
                loads.append(os.getloadavg()[0])
                print(f"round {round_ + 1}/{rounds}: {name} done (load {loads[-1]:.1f})", flush=True)
    return per_tree, loads
