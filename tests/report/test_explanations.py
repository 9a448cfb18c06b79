"""trainground explain on real runs (the demo's digits table, a small image folder), and the
report's explanations section and "why suspected" column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine.manifest import read_manifest
from trainground.explain import ExplainConfig, explain_run
from trainground.report import write_report


def test_table_run_gets_per_class_features_and_why_each_flagged_sample_is_suspected(run_copy: Path):
    record = explain_run(run_copy, config=ExplainConfig(samples=15, per_class=30))
    assert {"explanations.json", "explanations.csv"} <= set(read_manifest(run_copy)["entries"])
    assert record["kind"] == "table" and len(record["per_class"]) == 10
    assert all(len(c["top"]) == 5 and c["heatmap"].startswith("data:image/png") for c in record["per_class"])
    samples = record["samples"]
    assert len(samples) == 15
    # The demo's flagged samples are mostly injected label noise: the model's evidence favours
    # the suggested label over the given one for most of them (IG sums are logit differences).
    favoured = np.mean([s["total_suggested"] > s["total_given"] for s in samples])
    assert favoured >= 0.8, favoured
    assert all(str(s["suggested"]) in s["why"] for s in samples)
    html = write_report(run_copy).read_text()
    assert 'id="run-explanations"' in html and "why suspected (attribution)" in html
    assert samples[0]["why"].split(";")[0] in html


def _image_folder(root: Path) -> Path:
    # Two classes told apart by where the bright half is; three files in the wrong folder.
    rng = np.random.default_rng(0)
    for label, half in (("top", slice(0, 6)), ("bottom", slice(6, 12))):
        (root / label).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            wrong = i < 3
            pixels[slice(6, 12) if (label == "top") == wrong else slice(0, 6)] += 180
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.mark.slow
def test_image_run_gets_heatmaps_over_its_thumbnails_in_the_report(tmp_path: Path):
    data, out = _image_folder(tmp_path / "imgs"), tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["diagnose", str(data), "--out", str(out), "--epochs", "10", "--lr", "0.003"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["explain", str(out), "--samples", "6"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "explanations.json").read_text())
    assert record["kind"] == "image" and record["method"] == "integrated_gradients"
    assert record["samples"], "the misplaced files are flagged and explained"
    for s in record["samples"]:
        assert all(s[k].startswith("data:image/png;base64,") for k in ("thumbnail", "heatmap_given",
                                                                       "heatmap_suggested"))
    html = (out / "report.html").read_text()
    assert 'alt="attribution for the suggested label"' in html and "Explanations" in html
