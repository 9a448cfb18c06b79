"""Several ``trainground tune`` processes on one storage and one study: no trial lost or run twice."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from trainground.tune.storage import open_storage, storage_url

from ..conftest import skip_or_fail_in_ci
from .conftest import write_yaml

WORKERS, TRIALS = 3, 2
SPACE = """
fit: {epochs: 1}
tune: {pruner: none}
space:
  fit.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def run_workers(blobs_csv: Path, out: Path, config: Path, storage: str | None, study: str = "shared") -> None:
    """Start WORKERS tune processes at once on the same study and wait for all of them."""
    command = [sys.executable, "-m", "trainground.cli", "tune", str(blobs_csv), "--target", "label",
               "--trials", str(TRIALS), "--study", study, "--out", str(out), "--config", str(config)]
    if storage is not None:
        command += ["--storage", storage]
    procs = [subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(WORKERS)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text


def check_study(study: optuna.Study, out: Path) -> None:
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(WORKERS * TRIALS))  # none lost, none counted twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    dirs = sorted(p.name for p in (out / "trials").iterdir())
    assert dirs == [f"trial-{n:04d}" for n in range(WORKERS * TRIALS)]
    for t in trials:  # each folder holds the run of its own trial, written once
        config = yaml.safe_load((out / "trials" / f"trial-{t.number:04d}" / "config.yaml").read_text())
        assert config["fit"]["lr"] == t.params["fit.lr"]
        assert t.user_attrs["run_dir"].endswith(f"trial-{t.number:04d}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == WORKERS * TRIALS  # written last by the last worker to finish
    assert len({t.params["fit.lr"] for t in trials}) == WORKERS * TRIALS


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_workers_share_one_study_without_losing_or_repeating_trials(blobs_csv, tmp_path, backend):
    out = tmp_path / "tune"
    config = write_yaml(tmp_path / "space.yaml", SPACE)
    storage = None if backend == "sqlite" else f"journal:{tmp_path / 'journal.log'}"
    run_workers(blobs_csv, out, config, storage)
    study = optuna.load_study(study_name="shared", storage=open_storage(storage_url(storage, out)))
    check_study(study, out)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian's postgresql package keeps its server binaries off PATH.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server in a temporary folder (initdb + pg_ctl), stopped afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        skip_or_fail_in_ci("PostgreSQL is not installed (no initdb / pg_ctl on PATH or in /usr/lib/postgresql/*/bin)")
    try:
        import psycopg  # noqa: F401 - the driver SQLAlchemy 2.1 uses for postgresql://
    except ImportError:
        skip_or_fail_in_ci("psycopg is not installed (pip install 'trainground[tune]')")
    # initdb refuses to run as root: run the server as 'nobody' in a folder it owns.
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="tg-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            skip_or_fail_in_ci("running as root and no runuser to start PostgreSQL as another user")
        as_user = [runuser, "-u", "nobody", "--"]
        os.chmod(root, 0o755)
        shutil.chown(root, "nobody")
    data, port = root / "data", _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, text=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, text=True, timeout=120)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False, capture_output=True,
                           timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_workers_share_one_study_on_postgresql(blobs_csv, tmp_path, postgres_url):
    out = tmp_path / "tune"
    config = write_yaml(tmp_path / "space.yaml", SPACE)
    run_workers(blobs_csv, out, config, postgres_url)
    study = optuna.load_study(study_name="shared", storage=open_storage(postgres_url))
    check_study(study, out)
    assert not (out / "study.db").exists()  # the study lives in the server, not in the folder
