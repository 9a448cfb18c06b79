"""The command line, end to end on small data: outputs, overrides, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from trainground.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_demo_writes_a_run_directory_and_a_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("demo")
    assert result.exit_code == 0, result.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    assert run.name.startswith("demo-")
    for name in ("config.yaml", "metrics.jsonl", "model.safetensors", "checkpoints", "findings.json",
                 "sample_issues.csv", "samples.parquet", "layers.parquet"):
        assert (run / name).exists(), name
    assert "test accuracy" in result.stdout and "of 287 corrupted labels flagged" in result.stdout
    assert (run / "report.html").is_file() and "report.html" in result.stdout
    issues = pd.read_csv(run / "sample_issues.csv")
    assert len(issues) == 1437 and 200 < issues["is_label_issue"].sum() < 400
    test_record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert test_record["kind"] == "test" and test_record["test_accuracy"] > 0.8
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["noise"] == {"kind": "symmetric", "rate": 0.2, "seed": 0, "class_map": None}


def test_fit_then_predict_in_original_label_values(tmp_path, iris_csv, iris_frame):
    out = tmp_path / "run"
    result = invoke("fit", iris_csv, "--target", "species", "--out", out, "--epochs", "30")
    assert result.exit_code == 0, result.stderr
    pred_path = tmp_path / "pred.csv"
    result = invoke("predict", out, iris_csv, "--out", pred_path)
    assert result.exit_code == 0, result.stderr
    pred = pd.read_csv(pred_path)
    species = ["setosa", "versicolor", "virginica"]
    assert list(pred.columns) == ["row", "predicted_label"] + [f"prob_{s}" for s in species]
    assert pred["row"].tolist() == list(range(len(iris_frame)))
    assert np.allclose(pred[[f"prob_{s}" for s in species]].sum(axis=1), 1.0, atol=1e-5)
    assert (pred["predicted_label"] == iris_frame["species"]).mean() > 0.9


def test_predict_prints_csv_to_stdout_and_keeps_existing_files(tmp_path, iris_csv):
    out = tmp_path / "run"
    assert invoke("fit", iris_csv, "--target", "species", "--out", out, "--epochs", "1").exit_code == 0
    result = invoke("predict", out, iris_csv)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("row,predicted_label,prob_setosa")
    existing = tmp_path / "mine.csv"
    existing.write_text("keep me")
    result = invoke("predict", out, iris_csv, "--out", existing)
    assert result.exit_code == 2 and "exists" in result.stderr
    assert existing.read_text() == "keep me"


def test_command_line_options_override_the_yaml_config(tmp_path, iris_csv):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"fit": {"epochs": 5, "batch_size": 16, "seed": 3}, "model": {"hidden": [16]}}))
    out = tmp_path / "run"
    result = invoke("fit", iris_csv, "--target", "species", "--config", cfg, "--epochs", "2", "--out", out)
    assert result.exit_code == 0, result.stderr
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["fit"]["epochs"] == 2 and resolved["fit"]["batch_size"] == 16 and resolved["fit"]["seed"] == 3
    assert resolved["model"]["hidden"] == [16] and resolved["data"]["target"] == "species"


def test_existing_run_directory_needs_overwrite(tmp_path, iris_csv):
    out = tmp_path / "run"
    args = ("fit", iris_csv, "--target", "species", "--out", out, "--epochs", "1")
    assert invoke(*args).exit_code == 0
    result = invoke(*args)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert invoke(*args, "--overwrite").exit_code == 0


def test_resume_from_the_cli_equals_one_longer_run(tmp_path, iris_csv):
    base = ("fit", iris_csv, "--target", "species")
    assert invoke(*base, "--out", tmp_path / "long", "--epochs", "6").exit_code == 0
    assert invoke(*base, "--out", tmp_path / "short", "--epochs", "3").exit_code == 0
    result = invoke(*base, "--out", tmp_path / "short", "--epochs", "6", "--resume")
    assert result.exit_code == 0, result.stderr
    # same final weights as training 6 epochs in one go (tensors compared: safetensors
    # writes its metadata map in no fixed order, so the files' bytes may differ)
    long, short = (load_file(tmp_path / name / "model.safetensors") for name in ("long", "short"))
    assert long.keys() == short.keys() and all(torch.equal(long[k], short[k]) for k in long)
    assert yaml.safe_load((tmp_path / "short" / "config.yaml").read_text())["fit"]["epochs"] == 6
    result = invoke(*base, "--out", tmp_path / "short", "--resume", "--seed", "4")
    assert result.exit_code == 2 and "cannot resume with --seed 4" in result.stderr


# ------------------------------------------------------------------ bad input
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _image_folder(root: Path, *, corrupt: bool = False, empty_class: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        folder = root / label
        folder.mkdir(parents=True)
        if empty_class and label == "dog":
            continue
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


BAD_FIT_INPUTS = {
    "missing file": (lambda d: d / "absent.csv", "y", ["absent.csv", "no such file"]),
    "malformed csv": (lambda d: _write(d / "bad.csv", "a,b,y\n1,2,0\n1,2,3,4,5\n3,4,1\n"), "y", ["bad.csv", "line 3"]),
    "missing target": (lambda d: _write(d / "t.csv", "a,b,label\n1,2,0\n3,4,1\n"), "lable", ["t.csv", "'lable'", "label"]),
    "one class": (lambda d: _write(d / "one.csv", "a,y\n1,x\n2,x\n"), "y", ["one.csv", "single class"]),
    "inf feature": (lambda d: _write(d / "inf.csv", "a,b,y\n1,2,0\n1,inf,1\n3,4,1\n"), "y", ["inf.csv", "'b'", "line 3"]),
    "unencodable column": (
        lambda d: pd.DataFrame({"a": range(80), "note": [f"free text {i}" for i in range(80)], "y": [0, 1] * 40})
        .to_csv(d / "txt.csv", index=False) or d / "txt.csv",
        "y", ["txt.csv", "'note'", "80", "no feature columns left"],
    ),
    "empty image folder": (lambda d: (d / "imgs").mkdir() or d / "imgs", None, ["imgs"]),
    "class folder without images": (lambda d: _image_folder(d / "imgs", empty_class=True), None, ["dog"]),
    "unreadable image": (lambda d: _image_folder(d / "imgs", corrupt=True), None, ["broken.png"]),
}


@pytest.mark.parametrize("case", list(BAD_FIT_INPUTS))
def test_bad_fit_input_is_one_clear_message_and_exit_2(case, tmp_path):
    make, target, must_mention = BAD_FIT_INPUTS[case]
    data = make(tmp_path)
    args = ["fit", data, "--out", tmp_path / "run", "--epochs", "1"]
    if target:
        args += ["--target", target]
    result = invoke(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for text in must_mention:
        assert text in result.stderr, (text, result.stderr)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_predict_data_missing_a_trained_feature_column(tmp_path, iris_csv, iris_frame):
    out = tmp_path / "run"
    assert invoke("fit", iris_csv, "--target", "species", "--out", out, "--epochs", "1").exit_code == 0
    partial = tmp_path / "partial.csv"
    iris_frame.drop(columns=["petal_width"]).to_csv(partial, index=False)
    result = invoke("predict", out, partial)
    assert result.exit_code == 2
    assert "partial.csv" in result.stderr and "petal_width" in result.stderr


def test_unknown_config_key_and_missing_run_are_exit_2(tmp_path, iris_csv):
    cfg = _write(tmp_path / "c.yaml", "fit:\n  epoch: 3\n")
    result = invoke("fit", iris_csv, "--target", "species", "--config", cfg)
    assert result.exit_code == 2 and "c.yaml" in result.stderr and "'epoch'" in result.stderr
    result = invoke("predict", tmp_path / "no_run", iris_csv)
    assert result.exit_code == 2 and "no_run" in result.stderr


def test_installed_command_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainground", "fit", str(tmp_path / "nope.csv"), "--target", "y"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_image_folder_trains_a_cnn_and_predicts_per_file(tmp_path):
    # Two visually distinct classes (bright top half vs bright bottom half), 12 images each.
    rng = np.random.default_rng(0)
    for label, half in (("top", slice(0, 6)), ("bottom", slice(6, 12))):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            pixels[half] += 180
            Image.fromarray(pixels).save(tmp_path / "imgs" / label / f"{i}.png")
    out = tmp_path / "run"
    result = invoke("fit", tmp_path / "imgs", "--out", out, "--epochs", "15")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["name"] == "auto"
    result = invoke("predict", out, tmp_path / "imgs")
    assert result.exit_code == 0, result.stderr
    pred = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert list(pred.columns) == ["row", "predicted_label", "prob_bottom", "prob_top"]
    assert len(pred) == 24 and pred["row"].iloc[0] == "bottom/0.png"
    truth = pred["row"].str.split("/").str[0]
    assert (pred["predicted_label"] == truth).mean() >= 0.9


def _raw_table(path: Path) -> Path:
    """A table as users have it: a row numbering, a name per row, missing numbers and categories, rows without label."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=n)
    frame = pd.DataFrame({
        "rownames": np.arange(1, n + 1), "name": [f"person {i}" for i in range(n)],
        "x": np.where(rng.random(n) < 0.1, np.nan, x), "colour": rng.choice(["red", "blue", None], n),
        "y": np.where(x > 0, "pos", "neg").astype(object),
    })
    frame.loc[[3, 7], "y"] = None
    frame.to_csv(path, index=False)
    return path


def test_raw_table_fits_with_notices_and_predicts_alike(tmp_path):
    table = _raw_table(tmp_path / "raw.csv")
    out = tmp_path / "run"
    result = invoke("fit", table, "--target", "y", "--out", out, "--epochs", "2", "--ignore", "colour")
    assert result.exit_code == 0, result.stderr
    assert "note:" in result.stderr and "'rownames' (id-like" in result.stderr and "'name' (id-like" in result.stderr
    assert "'colour' (ignored" in result.stderr and "imputed missing numbers: 'x'" in result.stderr
    assert "2 rows without a label" in result.stderr
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["ignore"] == ["colour"]
    result = invoke("predict", out, table)  # the model file holds the imputation medians and the columns
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 61


def test_diagnose_takes_config_and_training_options(tmp_path):
    table = _raw_table(tmp_path / "raw.csv")
    config = _write(tmp_path / "c.yaml", "fit:\n  epochs: 2\n  lr: 0.5\nmodel:\n  hidden: [8]\n")
    out = tmp_path / "diag"
    result = invoke("diagnose", table, "--target", "y", "--out", out, "--config", config, "--lr", "0.01",
                    "--batch-size", "8", "--model", "mlp")
    assert result.exit_code == 0, result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["fit"]["lr"] == 0.01 and saved["fit"]["batch_size"] == 8 and saved["fit"]["epochs"] == 2
    assert saved["model"] == {**saved["model"], "name": "mlp", "hidden": [8]}
    issues = pd.read_csv(out / "sample_issues.csv")
    unlabelled = issues[issues["index"].isin([3, 7])]
    assert unlabelled["given_label"].isna().all() and unlabelled["predicted_label"].isin(["pos", "neg"]).all()
    findings = json.loads((out / "findings.json").read_text())
    prep = [f for f in (findings if isinstance(findings, list) else findings["findings"]) if f["check"] == "data_preparation"]
    assert prep and prep[0]["evidence"]["unlabelled_rows"] == 2 and prep[0]["evidence"]["imputed_numbers"]["x"] > 0
    bad = invoke("diagnose", table, "--target", "y", "--model", "resnet", "--out", tmp_path / "d2")
    assert bad.exit_code == 2 and "--model" in bad.stderr and "resnet" in bad.stderr


def test_image_recipe_schedule_is_on_unless_lr_or_epochs_are_set(tmp_path):
    from trainground.cli import build_run_config

    def schedule(config=None, **given):
        options = {"target": None, "epochs": None, "seed": None, "lr": None, "batch_size": None, "model": None,
                   "ignore": None, **given}
        return build_run_config(config, "imgs", **options).fit.auto_schedule

    assert schedule() == "images"
    assert schedule(lr=0.01) == "never" and schedule(epochs=3) == "never" and schedule(batch_size=8) == "never"
    assert schedule(_write(tmp_path / "a.yaml", "fit:\n  lr: 0.01\n")) == "never"
    assert schedule(_write(tmp_path / "b.yaml", "fit:\n  auto_schedule: always\n  lr: 0.01\n")) == "always"


def test_diagnose_and_repair_refuse_config_they_would_ignore(tmp_path):
    table = _raw_table(tmp_path / "raw.csv")
    config = _write(tmp_path / "c.yaml", "loss:\n  name: ce\ndata:\n  test_fraction: 0.2\n")
    for command in ("diagnose", "repair"):
        result = invoke(command, table, "--target", "y", "--config", config, "--out", tmp_path / command)
        assert result.exit_code == 2 and "loss, data.test_fraction" in result.stderr, result.stderr
        assert not (tmp_path / command).exists()
