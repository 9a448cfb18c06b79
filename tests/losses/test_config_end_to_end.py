"""The ``loss:`` section from a YAML config through the CLI and ``run_fit``."""

import yaml
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine import RunConfig
from trainground.engine.run import run_fit
from trainground.losses import FocalLoss


def test_cli_trains_with_the_loss_of_the_yaml_config(tmp_path, iris_csv, monkeypatch):
    built = []
    import trainground.engine.run_losses as run_module

    real = run_module.build_loss

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(run_module, "build_loss", spy)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"loss": {"name": "focal", "weighting": "inverse_sqrt", "gamma": 1.5}}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(iris_csv), "--target", "species", "--config", str(cfg),
                                      "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert isinstance(built[0], FocalLoss) and built[0].gamma == 1.5 and built[0].alpha is not None
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["loss"] == {"name": "focal", "weighting": "inverse_sqrt", "beta": 0.999, "gamma": 1.5,
                             "label_smoothing": 0.0, "task_weighting": "static", "task_weights": None,
                             "dwa_temperature": 2.0, "events": [], "hierarchy": None}


def test_cli_rejects_a_bad_loss_section_with_one_line(tmp_path, iris_csv):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"loss": {"name": "weighted_ce"}}))
    result = CliRunner().invoke(app, ["fit", str(iris_csv), "--target", "species", "--config", str(cfg),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "loss.weighting is required for weighted_ce" in result.output


def test_run_fit_with_weighted_ce_and_smoothing(tmp_path):
    config = RunConfig.from_dict({
        "data": {"source": "builtin:digits", "test_fraction": 0.2},
        "fit": {"epochs": 2, "device": "cpu"},
        "loss": {"name": "weighted_ce", "weighting": "effective_number", "label_smoothing": 0.1},
    })
    result = run_fit(config, out=tmp_path / "run")
    assert result.test_accuracy is not None and result.test_accuracy > 0.5
