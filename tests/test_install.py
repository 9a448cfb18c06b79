"""The wheel installs into an existing environment that already has torch, and its command runs.

The "existing environment" is a fresh virtual environment that sees the packages of the
one running the tests (torch included) through a ``.pth`` file, the way a user's
environment already holds torch: nothing is downloaded (``--no-index``) and no torch is
installed. The wheel is installed with ``--ignore-installed --no-deps`` so the test
environment's own editable install is left alone; ``pip check`` then proves that the
packages already there satisfy every requirement of trainground.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=500, **kw)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def test_wheel_installs_into_an_environment_with_torch_and_runs(tmp_path):
    pytest.importorskip("setuptools")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
         tmp_path / "dist", ROOT)
    wheel = next((tmp_path / "dist").glob("trainground-*.whl"))
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", tmp_path / "env")
    python = tmp_path / "env" / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "existing_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co.
    _run(python, "-m", "pip", "install", "--no-index", "--ignore-installed", "--no-deps", wheel)
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert "trainground" not in check.stdout, check.stdout  # every requirement met by what is there
    where = _run(python, "-c", "import trainground, torch; print(trainground.__file__)").stdout.strip()
    assert where.startswith(str(tmp_path / "env")), where  # the wheel, not the source tree
    out = _run(tmp_path / "env" / "bin" / "trainground", "diagnose", "builtin:digits", "--epochs", "2",
               "--out", tmp_path / "run", cwd=tmp_path)
    assert (tmp_path / "run" / "sample_issues.csv").exists(), out.stdout
    assert (Path(site) / "trainground" / "report" / "templates").is_dir()  # package data shipped
    assert (Path(site) / "trainground" / "review" / "templates" / "review.html.j2").is_file()
