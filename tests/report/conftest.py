"""The demo's own run directory (``trainground demo``: real training, real diagnosis), made once per session."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from trainground.recipes.demo import run_demo


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory ``trainground demo`` writes (read-only for tests: copy it to change it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_demo(root=tmp_path_factory.mktemp("report"), console=Console(file=io.StringIO()))
    finally:
        torch.set_num_threads(threads)
    assert result.run_dir is not None
    return result.run_dir.path


@pytest.fixture
def run_copy(demo_run: Path, tmp_path: Path) -> Path:
    """A private copy of the demo run, free to damage."""
    target = tmp_path / "run"
    shutil.copytree(demo_run, target)
    return target


def make_repair_folder(run: Path, folder: Path) -> Path:
    """A repair output folder as the repair contract describes it, built from a real run:
    round 0 is the run, round 1 a copy of it; every flagged label is relabelled to its suggestion."""
    folder.mkdir(parents=True)
    shutil.copytree(run, folder / "round_0")
    shutil.copytree(run, folder / "round_1")
    shutil.copy(run / "config.yaml", folder / "config.yaml")
    table = pd.read_csv(run / "sample_issues.csv")
    flagged = table[table["is_label_issue"]]
    changes = pd.DataFrame({
        "index": flagged["index"], "action": "relabel", "old_label": flagged["given_label"],
        "new_label": flagged["suggested_label"], "score": flagged["label_score"],
        "reason": "label issue: the suggested label is far more likely",
    })
    changes.to_csv(folder / "changes.csv", index=False)
    with open(folder / "actions.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"step": 1, "action": "relabel", "reason": row.reason,
                                 "evidence": {"policy": "relabel", "target": int(row.index), "value": str(row.new_label)}}) + "\n" for row in changes.itertuples())
        fh.write(json.dumps({"step": 1, "action": "class_weights", "reason": "imbalance",
                             "evidence": {"policy": "class_weights", "target": None, "value": [1.0] * 10}}) + "\n")
    metrics = {
        "rounds": [
            {"round": 0, "val_accuracy": 0.71, "test_accuracy": 0.90, "trainings": 1.5, "actions": {}, "run_dir": "round_0"},
            {"round": 1, "val_accuracy": 0.93, "test_accuracy": 0.95, "trainings": 1.0,
             "actions": {"relabel": len(changes), "class_weights": 1}, "run_dir": "round_1"},
        ],
        "best_round": 1, "before": {"val_accuracy": 0.71, "test_accuracy": 0.90},
        "after": {"val_accuracy": 0.93, "test_accuracy": 0.95}, "stopped": "no more label issues",
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


@pytest.fixture
def repair_folder(demo_run: Path, tmp_path: Path) -> Path:
    return make_repair_folder(demo_run, tmp_path / "repair")
