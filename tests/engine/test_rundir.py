from __future__ import annotations

import pytest

from trainground.engine import RunDir
from trainground.errors import RunDirError


def test_existing_run_is_kept_unless_overwrite(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config({"fit": {"epochs": 1}})
    with pytest.raises(RunDirError, match="already exists; pass --overwrite"):
        RunDir.create(tmp_path / "r")
    assert run.config.exists()
    RunDir.create(tmp_path / "r", overwrite=True)
    assert not run.config.exists()


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    mine = tmp_path / "my_thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    with pytest.raises(RunDirError, match="refusing to delete"):
        RunDir.create(mine, overwrite=True)
    assert (mine / "chapter1.tex").read_text() == "precious"


def test_empty_folder_is_used_and_new_paths_do_not_collide(tmp_path):
    (tmp_path / "empty").mkdir()
    RunDir.create(tmp_path / "empty")
    first = RunDir.new_path(tmp_path, "demo")
    first.mkdir()
    assert RunDir.new_path(tmp_path, "demo") != first


def test_open_requires_a_run(tmp_path):
    with pytest.raises(RunDirError, match="no such run directory"):
        RunDir.open(tmp_path / "nope")
    with pytest.raises(RunDirError, match="not a trainground run"):
        RunDir.open(tmp_path)
