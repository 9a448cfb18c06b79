"""Per-task diagnosis of a multi-target dataset: label issues per task, suffixed columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from trainground.data import MultiTargetDataset, TaskSpec
from trainground.diagnosis.dataset import DatasetDiagnosisConfig
from trainground.diagnosis.tasks import diagnose_tasks
from trainground.engine import FitConfig


def _noisy(n=600, flip=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    coarse = (x[:, 0] > 0).long()
    fine = (x[:, 1] > 0).long() * 2 + (x[:, 2] > 0).long()
    flipped = torch.randperm(n, generator=g)[:flip]
    fine_noisy = fine.clone()
    fine_noisy[flipped] = (fine[flipped] + 1 + torch.randint(0, 3, (flip,), generator=g)) % 4
    tasks = (TaskSpec("coarse", "class", 2, (0, 1)), TaskSpec("fine", "class", 4, (0, 1, 2, 3)))
    return MultiTargetDataset(x, {"coarse": coarse, "fine": fine_noisy}, torch.arange(n), tasks), flipped.numpy()


def test_label_issues_are_found_in_the_noisy_task_only(tmp_path):
    data, flipped = _noisy()
    config = DatasetDiagnosisConfig(fit=FitConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu", threads=1),
                                    patience=4, second_pass=False, training_checks=None)
    result = diagnose_tasks(data, config, run_dir=tmp_path / "run")
    table = pd.read_csv(tmp_path / "run" / "sample_issues.csv")
    assert len(table) == len(data)
    for column in ("given_label_fine", "is_label_issue_fine", "label_score_coarse", "is_outlier_issue"):
        assert column in table.columns
    flagged_fine = set(table.loc[table["is_label_issue_fine"], "index"])
    recall = len(flagged_fine & set(flipped)) / len(flipped)
    precision = len(flagged_fine & set(flipped)) / max(len(flagged_fine), 1)
    assert recall > 0.5 and precision > 0.4
    # the clean task: few flags (the flips are in the other task)
    assert table["is_label_issue_coarse"].sum() < table["is_label_issue_fine"].sum()
    assert np.array_equal(result.tables["fine"]["index"].to_numpy(), np.arange(len(data)))


def test_cli_diagnose_with_two_targets_writes_suffixed_columns(tmp_path):
    from typer.testing import CliRunner

    from trainground.cli import app

    data, _ = _noisy(300)
    frame = pd.DataFrame(data.features.numpy(), columns=[f"f{i}" for i in range(6)])
    frame["coarse"] = data.targets["coarse"].numpy()
    frame["fine"] = data.targets["fine"].numpy()
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["diagnose", str(path), "--target", "coarse,fine", "--out", str(out),
                                      "--epochs", "3"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sample_issues.csv")
    assert {"is_label_issue_coarse", "is_label_issue_fine", "given_label_fine"} <= set(table.columns)
    assert "task fine" in result.output
