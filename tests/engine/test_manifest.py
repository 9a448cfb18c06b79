"""The run manifest, the run lock and file modes: nothing that is not ours is ever deleted."""

from __future__ import annotations

import fcntl
import gc
import json
import os
import stat

import pytest

from trainground.engine import RunDir
from trainground.engine.atomic import atomic_write_text
from trainground.engine.manifest import LOCK_NAME, MANIFEST_NAME
from trainground.engine.rundir import check_inputs_outside, check_output_file
from trainground.errors import RunDirError


def _entries(folder):
    return json.loads((folder / MANIFEST_NAME).read_text())["entries"]


def test_writes_into_a_run_are_listed_before_they_happen(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config({"a": 1})
    run.checkpoints.mkdir()
    atomic_write_text(run.checkpoints / "x.txt", "x")  # two levels down: listed as "checkpoints"
    sub = RunDir.create(run.path / "round_0")
    atomic_write_text(sub.path / "changes.csv", "a\n")
    assert {"config.yaml", "checkpoints", "round_0", LOCK_NAME} <= set(_entries(run.path))
    assert "changes.csv" in _entries(sub.path)


def test_overwrite_removes_only_listed_entries_and_refuses_foreign_ones(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config({"a": 1})
    (run.path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="notes.txt"):
        RunDir.create(run.path, overwrite=True)
    assert (run.path / "notes.txt").read_text() == "mine" and run.config.exists()
    (run.path / "notes.txt").unlink()
    RunDir.create(run.path, overwrite=True)
    assert not run.config.exists()


def test_a_users_file_inside_a_sub_run_is_found(tmp_path):
    run = RunDir.create(tmp_path / "r")
    sub = RunDir.create(run.path / "round_0")
    (sub.path / "mine.txt").write_text("x")
    with pytest.raises(RunDirError, match="round_0/mine.txt"):
        RunDir.create(run.path, overwrite=True)


def test_a_folder_named_like_a_run_is_not_one(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("config.yaml", "metrics.jsonl", "model.safetensors"):
        (folder / name).write_text("mine")
    (folder / "checkpoints").mkdir()
    with pytest.raises(RunDirError, match="not a trainground run directory"):
        RunDir.create(folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl",
                                                        "model.safetensors"]


def test_inputs_inside_the_output_are_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "data.csv").write_text("a\n")
    with pytest.raises(RunDirError, match="inside the output folder"):
        check_inputs_outside(tmp_path / "r", [tmp_path / "r" / "data.csv"])
    check_inputs_outside(tmp_path / "r", ["builtin:digits", None, tmp_path / "other.csv"])


def test_output_files_not_ours_need_overwrite(tmp_path):
    mine = tmp_path / "data.csv"
    mine.write_text("a\n")
    with pytest.raises(RunDirError, match="not a file of a trainground run"):
        check_output_file(mine, overwrite=False)
    check_output_file(mine, overwrite=True)
    run = RunDir.create(tmp_path / "r")
    atomic_write_text(run.report, "<html>")
    check_output_file(run.report, overwrite=False)  # ours: re-rendering the report is fine


def test_discard_removes_the_failed_start_and_nothing_else(tmp_path):
    run = RunDir.create(tmp_path / "new")
    run.write_config({})
    run.discard()
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    run = RunDir.create(tmp_path / "kept")
    run.write_config({})
    run.discard()
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


def test_a_second_writer_gets_one_clear_line(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config({})
    # Another process holding the lock: a second open file description conflicts under flock.
    del run
    gc.collect()  # our own lock is released once no RunDir holds it
    fd = os.open(tmp_path / "r" / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunDirError, match="another trainground process"):
            RunDir.create(tmp_path / "r", overwrite=True)
        with pytest.raises(RunDirError, match="another trainground process"):
            RunDir.open(tmp_path / "r", write=True)
    finally:
        os.close(fd)
    RunDir.create(tmp_path / "r", overwrite=True)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.html", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_model_files_respect_the_umask(tmp_path, umask):
    """safetensors replaces the temporary file it is given with a 0600 one: the mode is set after the write."""
    import torch

    from trainground.engine.model_file import save_model

    old = os.umask(umask)
    try:
        save_model(tmp_path / "model.safetensors", torch.nn.Linear(2, 2))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~umask
