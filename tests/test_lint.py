"""The library's source passes the project's lint rules ([tool.ruff] in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import skip_or_fail_in_ci

ROOT = Path(__file__).resolve().parents[1]


def test_source_passes_ruff():
    if subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode != 0:
        skip_or_fail_in_ci("ruff is not installed (it comes with the dev extra)")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
