"""``trainground recipe gan``: end to end on a tiny config (8x8 digits, one epoch), resume and bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine.manifest import read_manifest

runner = CliRunner()

TINY = """
side: 8
latent_dim: 8
generator_width: 16
discriminator_width: 8
scales: [1, 2]
eval_samples: 200
classifier_epochs: 2
train: {epochs: 2, batch_size: 128}
generator:
  guard: {adaptive_accumulation: true, max_accumulation: 4}
"""


@pytest.mark.slow
def test_recipe_gan_writes_a_complete_run_folder_and_resumes(tmp_path):
    config = tmp_path / "gan.yaml"
    config.write_text(TINY)
    out = tmp_path / "run"
    result = runner.invoke(app, ["recipe", "gan", "--config", str(config), "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "final: precision" in result.output and "report:" in result.output
    for name in ("metrics.jsonl", "metrics-discriminator.jsonl", "metrics-generator.jsonl", "findings.json",
                 "generative_metrics.json", "report.html", "model-generator.safetensors", "samples/epoch-000.png",
                 "layers-generator.parquet", "config.yaml"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "generative_metrics.json").read_text())
    assert set(summary["final"]) >= {"precision", "recall", "f1", "frechet", "mode_coverage", "ssim_intra"}
    listed = set(read_manifest(out)["entries"])
    assert {p.name for p in out.iterdir()} - {".trainground-run.json"} <= listed  # every file is in the manifest
    page = (out / "report.html").read_text()
    assert "Both players" in page and "Findings" in page
    assert page.count('<figure><img src="data:image/png;base64,') == 1  # one grid per evaluated epoch
    # one more epoch from the checkpoint of the first: config.yaml says 1 epoch, --epochs 2 extends it
    again = runner.invoke(app, ["recipe", "gan", "--out", str(out), "--epochs", "2", "--resume"])
    assert again.exit_code == 0, again.output
    assert len(list((out / "samples").glob("epoch-*.png"))) == 2


def test_recipe_gan_bad_config_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "gan.yaml"
    config.write_text("scales: [1, 2]\nlos: hinge\n")
    result = runner.invoke(app, ["recipe", "gan", "--config", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "los" in result.output and "did you mean 'loss'" in result.output
    assert "Traceback" not in result.output


def test_the_documented_yaml_holds_the_defaults():
    from pathlib import Path

    from trainground.engine.gan import GanConfig
    from trainground.recipes.gan import load_gan_config

    example = Path(__file__).resolve().parents[2] / "examples" / "gan.yaml"
    assert load_gan_config(example) == GanConfig()
