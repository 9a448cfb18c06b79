"""The logging section, the CLI options, and what happens without the optional packages."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine import LoggingConfig, MLflowConfig, RunConfig, read_metrics
from trainground.errors import ConfigError
from trainground.integrations import MLflowLogger, TensorBoardLogger, build_loggers

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_importing_trainground_imports_neither_tracker():
    code = ("import sys, trainground, trainground.cli, trainground.integrations; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'mlflow') "
            "or m == 'torch.utils.tensorboard'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("blocked, make, extra", [
    (("tensorboard", "torch.utils.tensorboard"), lambda tmp: TensorBoardLogger(tmp / "tb"), "tensorboard"),
    (("mlflow", "mlflow.tracking"), lambda tmp: MLflowLogger(f"sqlite:///{tmp}/m.db"), "mlflow"),
])
def test_missing_package_is_one_config_error_naming_the_pip_command(blocked, make, extra, tmp_path, monkeypatch):
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, as if not installed
    with pytest.raises(ConfigError, match=rf"not installed.*pip install 'trainground\[{extra}\]'"):
        make(tmp_path)


def test_missing_package_from_the_cli_is_exit_2_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = invoke("fit", "builtin:digits", "--out", tmp_path / "run", "--epochs", "1", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 2
    assert "pip install 'trainground[tensorboard]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_logging_section_is_validated_strictly():
    with pytest.raises(ConfigError, match=r"logging: unknown option 'tensorbord' \(did you mean 'tensorboard'\?\)"):
        RunConfig.from_dict({"logging": {"tensorbord": "tb"}})
    with pytest.raises(ConfigError, match=r"logging.mlflow: unknown option 'uri'"):
        RunConfig.from_dict({"logging": {"mlflow": {"uri": "sqlite:///m.db"}}})
    config = RunConfig.from_dict({"logging": {"mlflow": {"experiment": "e"}}})
    assert config.logging == LoggingConfig(tensorboard=None, mlflow=MLflowConfig(experiment="e"))
    assert RunConfig.from_dict(config.to_dict()) == config


def test_build_loggers_follows_the_section(tmp_path, tracking_uri):
    assert build_loggers(LoggingConfig()) == []
    pytest.importorskip("tensorboard", reason="needs pip install 'trainground[tensorboard]'")
    pytest.importorskip("sqlalchemy", reason="needs pip install 'trainground[mlflow]'")
    tb, ml = build_loggers(LoggingConfig(tensorboard=str(tmp_path / "tb"), mlflow=MLflowConfig(
        tracking_uri=tracking_uri, experiment="e", run_name="r", step_every=3)))
    assert isinstance(tb, TensorBoardLogger) and tb.log_dir == tmp_path / "tb"
    assert isinstance(ml, MLflowLogger) and (ml.experiment, ml.run_name, ml.step_every) == ("e", "r", 3)


def test_cli_fit_logs_to_both_and_resume_continues_them(tmp_path, tracking_uri):
    pytest.importorskip("tensorboard", reason="needs pip install 'trainground[tensorboard]'")
    pytest.importorskip("sqlalchemy", reason="needs pip install 'trainground[mlflow]'")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, tb, uri = tmp_path / "run", tmp_path / "tb", tracking_uri
    result = invoke("fit", "builtin:digits", "--out", run, "--epochs", "1", "--tensorboard", tb, "--mlflow", uri)
    assert result.exit_code == 0, result.stderr
    assert f"tensorboard --logdir {tb}" in result.stdout and "MLflow: run " in result.stdout
    assert invoke("fit", "builtin:digits", "--out", run, "--resume", "--epochs", "2", "--tensorboard", tb).exit_code == 2
    result = invoke("fit", "builtin:digits", "--out", run, "--resume", "--epochs", "2")  # logging from config.yaml
    assert result.exit_code == 0, result.stderr
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "step"]
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    assert sorted(e.step for e in acc.Scalars("step/grad_norm")) == steps == list(range(1, len(steps) + 1))
    client = MlflowClient(uri)
    (found,) = [r for r in client.search_runs([client.get_experiment_by_name("trainground").experiment_id])
                if r.data.tags.get("trainground.run_dir") == str(run.resolve())]
    assert found.info.run_name == "run" and found.data.params["data.source"] == "builtin:digits"
    assert "logging.mlflow.tracking_uri" not in found.data.params  # where logs go is not a hyper-parameter
    assert [m.step for m in client.get_metric_history(found.info.run_id, "step/grad_norm")] == steps
    assert len(client.get_metric_history(found.info.run_id, "epoch/val_accuracy")) == 2

