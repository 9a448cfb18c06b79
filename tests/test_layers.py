"""The layer rule of ARCHITECTURE.md, enforced: import-linter's contract in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_only():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # lint-imports is importlinter.cli:lint_imports_command; run it with this interpreter.
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
