"""``diagnose`` / ``find_sample_issues`` / ``trainground diagnose``: end to end on small data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from trainground.cli import app
from trainground.data import inject_label_noise
from trainground.diagnosis import Finding, Severity, read_findings
from trainground.engine import Callback, FitConfig
from trainground.errors import ConfigError
from trainground.recipes.diagnose import diagnose_dataset, find_sample_issues

runner = CliRunner()
COLUMNS = [
    "index", "given_label", "predicted_label", "suggested_label", "is_label_issue", "label_score",
    "is_outlier_issue", "outlier_score", "is_near_duplicate_issue", "near_duplicate_score",
    "is_ambiguous_issue", "ambiguous_score",
]


def test_find_sample_issues_finds_injected_label_errors(digits):
    data = digits.subset(np.arange(700))
    noisy = inject_label_noise(data.labels.numpy(), kind="symmetric", rate=0.2, seed=3, num_classes=10)
    table = find_sample_issues(data.with_labels(noisy.labels), fit_config=FitConfig(epochs=20, seed=1, device="cpu"))
    assert list(table.columns) == COLUMNS
    assert table["index"].tolist() == data.index.tolist()
    flagged, truth = table["is_label_issue"].to_numpy(), noisy.is_corrupted
    precision = (flagged & truth).sum() / flagged.sum()
    recall = (flagged & truth).sum() / truth.sum()
    assert precision > 0.8 and recall > 0.7, (precision, recall)
    fixed = table.loc[flagged & truth]
    true_labels = data.labels.numpy()[fixed["index"].to_numpy()]
    assert (fixed["suggested_label"].to_numpy() == true_labels).mean() > 0.8


class _Watcher(Callback):
    """Stands in for a training-diagnosis callback: anything with ``.findings``."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.epochs = 0

    def on_epoch_end(self, state) -> None:
        self.epochs += 1
        self.findings = [Finding(check="watcher", severity=Severity.INFO, subject="run", message=f"{self.epochs} epochs")]


def test_training_stops_after_the_window_and_extra_callback_findings_are_collected(digits, tmp_path):
    data = digits.subset(np.arange(400))
    noisy = inject_label_noise(data.labels.numpy(), kind="symmetric", rate=0.4, seed=0, num_classes=10)
    watcher = _Watcher()
    result = diagnose_dataset(
        data.with_labels(noisy.labels), fit_config=FitConfig(epochs=60, device="cpu"), run_dir=tmp_path / "run",
        extra_callbacks=[watcher], patience=3,
    )
    epochs = len(result.fit.history)
    assert epochs == result.early_learning_epoch + 4 < 60
    assert watcher.epochs == epochs
    assert any(f.check == "watcher" for f in result.findings)
    assert any(f.check == "watcher" for f in read_findings(tmp_path / "run" / "findings.json"))
    samples = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    assert samples.groupby("index").size().eq(epochs).all()  # every sample, train and val, every epoch


def test_diagnosis_needs_a_validation_split(digits):
    with pytest.raises(ConfigError, match="val_fraction"):
        diagnose_dataset(digits.subset(np.arange(100)), fit_config=FitConfig(val_fraction=0.0))


def test_cli_diagnose_writes_the_run_directory_and_prints_the_top_issues(tmp_path, iris_frame):
    frame = iris_frame.copy()
    flip = [0, 60, 120]  # one setosa -> virginica etc.: unmistakable label errors
    frame.loc[flip, "species"] = ["virginica", "setosa", "versicolor"]
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    result = runner.invoke(app, ["diagnose", str(path), "--target", "species", "--out", str(out), "--epochs", "30"])
    assert result.exit_code == 0, result.stdout + result.stderr
    for name in ("samples.parquet", "sample_issues.csv", "findings.json", "model.safetensors", "config.yaml"):
        assert (out / name).exists(), name
    table = pd.read_csv(out / "sample_issues.csv")
    assert list(table.columns) == COLUMNS and len(table) == len(frame)
    assert set(table["given_label"]) == {"setosa", "versicolor", "virginica"}
    flagged = set(table.loc[table["is_label_issue"], "index"])
    assert set(flip) <= flagged and len(flagged) <= 8
    assert "top sample issues" in result.stdout


def _one_class(tmp_path):
    pd.DataFrame({"x": np.arange(30.0), "y": "a"}).to_csv(tmp_path / "one.csv", index=False)
    return tmp_path / "one.csv", "y", "single class"


def _tiny(tmp_path):
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).to_csv(tmp_path / "tiny.csv", index=False)
    return tmp_path / "tiny.csv", "y", "at least 10"


def _no_column(tmp_path):
    pd.DataFrame({"x": np.arange(30.0), "y": ["a", "b"] * 15}).to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv", "label", "label"


def _missing_file(tmp_path):
    return tmp_path / "nope.csv", "y", "nope.csv"


@pytest.mark.parametrize("make", [_one_class, _tiny, _no_column, _missing_file])
def test_cli_diagnose_bad_input_is_one_clear_error_and_exit_2(make, tmp_path):
    path, target, mention = make(tmp_path)
    result = runner.invoke(app, ["diagnose", str(path), "--target", target, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and mention in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_diagnose_refuses_to_overwrite_a_run_without_the_flag(tmp_path, iris_csv):
    out = tmp_path / "run"
    args = ["diagnose", str(iris_csv), "--target", "species", "--out", str(out), "--epochs", "2"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_second_pass_retrains_on_trusted_samples_and_costs_what_it_says(digits):
    data = digits.subset(np.arange(500))
    noisy = inject_label_noise(data.labels.numpy(), kind="symmetric", rate=0.3, seed=4, num_classes=10)
    config = FitConfig(epochs=30, seed=2, device="cpu")
    one = diagnose_dataset(data.with_labels(noisy.labels), fit_config=config, second_pass=False)
    two = diagnose_dataset(data.with_labels(noisy.labels), fit_config=config)
    n_fit = len(one.fit.train_index)
    assert one.sample_presentations == n_fit * len(one.fit.history)
    extra = two.sample_presentations - one.sample_presentations
    flagged_first = int(one.table["is_label_issue"].sum())
    # The second pass trains on (unflagged samples - their validation split), for >= 1 epoch.
    assert 0 < extra and extra % (500 - flagged_first - int(np.ceil(0.1 * (500 - flagged_first)))) == 0
    for result in (one, two):
        f = result.table["is_label_issue"].to_numpy() & noisy.is_corrupted
        assert f.sum() / noisy.is_corrupted.sum() > 0.6


def test_cli_diagnose_no_second_pass_trains_once(tmp_path, iris_csv, monkeypatch):
    import trainground.diagnosis.dataset as dataset_module

    calls = []
    real = dataset_module.second_pass
    monkeypatch.setattr(dataset_module, "second_pass", lambda *a, **k: calls.append(1) or real(*a, **k))
    base = ["diagnose", str(iris_csv), "--target", "species", "--epochs", "2"]
    assert runner.invoke(app, [*base, "--out", str(tmp_path / "one"), "--no-second-pass"]).exit_code == 0
    assert calls == [] and (tmp_path / "one" / "sample_issues.csv").exists()
