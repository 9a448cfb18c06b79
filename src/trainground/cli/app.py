"""The command line's app, its shared options and the helpers every command uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trainground.errors import ConfigError

app = typer.Typer(
    name="trainground",
    help="Train PyTorch models stably; find, explain and repair what is wrong with the data and the model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console()

# Options shared by fit, diagnose and repair; each overrides its key of the --config YAML.
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML with sections data, model, fit (as for fit).")]
LrOption = Annotated[float | None, typer.Option("--lr", min=0.0, help="Learning rate (fit.lr).")]
BatchSizeOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Samples per step (fit.batch_size).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Built-in model: auto, mlp, cnn, cnn1d, lstm or gru (model.name).")]
IgnoreOption = Annotated[str | None, typer.Option(
    "--ignore", help="Comma-separated table columns that are not features (data.ignore).")]
RegressionOption = Annotated[str | None, typer.Option(
    "--regression", help="Comma-separated target columns to predict as numbers: a regression head, MAE and R^2 "
                         "(data.task_kinds: {COL: regression}).")]
ClassifyOption = Annotated[str | None, typer.Option(
    "--classify", help="Comma-separated target columns to train as classes even if they look continuous "
                       "(data.task_kinds: {COL: class}).")]


def report_summary(run_dir: Path, *, write_html: bool, out: Path | None = None) -> None:
    """Write the run's report.html (when asked) and print the summary with the same top findings."""
    from trainground.report import print_report_summary, read_report, save_report

    report = read_report(run_dir)
    path = save_report(report, out if out is not None else Path(run_dir) / "report.html") if write_html else None
    print_report_summary(report, out_console, report_path=path)


def data_stem(data: str) -> str:
    """The short name of a data argument for default output folders: ``builtin:digits`` -> ``digits``,
    ``path/to/table.csv`` -> ``table``."""
    return data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem


def split_columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def apply_task_kinds(run_config: Any, *, regression: str | None, classify: str | None) -> None:
    """``--regression`` / ``--classify`` into ``data.task_kinds`` (over the YAML's entries)."""
    both = set(split_columns(regression or "")) & set(split_columns(classify or ""))
    if both:
        raise ConfigError(f"--regression and --classify both name {', '.join(sorted(both))}; choose one")
    for text, kind in ((regression, "regression"), (classify, "class")):
        for column in split_columns(text or ""):
            run_config.data.task_kinds[column] = kind


def build_run_config(
    config: Path | None, data: str, *, target: str | None, epochs: int | None, seed: int | None, lr: float | None,
    batch_size: int | None, model: str | None, ignore: str | None, regression: str | None = None,
    classify: str | None = None,
) -> Any:
    """The RunConfig of a command: defaults < the --config YAML < command-line options."""
    from trainground.engine import RunConfig
    from trainground.engine.config_io import from_dict, read_yaml
    from trainground.models import ModelConfig

    values = read_yaml(config) if config is not None else {}
    run_config = RunConfig.from_dict(values, where=str(config) if config else "config")
    run_config.data.source = data
    for section, key, value in (("data", "target", target), ("fit", "epochs", epochs), ("fit", "seed", seed),
                                ("fit", "lr", lr), ("fit", "batch_size", batch_size)):
        if value is not None:
            setattr(getattr(run_config, section), key, value)
    auto_schedule(run_config, values, lr=lr, epochs=epochs, batch_size=batch_size)
    if model is not None:  # checked like the YAML's model.name
        run_config.model = from_dict(ModelConfig, {**vars(run_config.model), "name": model}, "--model")
    if ignore is not None:
        run_config.data.ignore = split_columns(ignore)
    apply_task_kinds(run_config, regression=regression, classify=classify)
    return run_config


def auto_schedule(
    run_config: Any, values: dict, *, lr: float | None, epochs: int | None, batch_size: int | None = None
) -> None:
    """The image recipe's default: lr, batch and epochs chosen from the data unless the user set one."""
    fit_values = values.get("fit") or {}
    given = lr is not None or epochs is not None or batch_size is not None
    if "auto_schedule" not in fit_values and not given and not {"lr", "epochs", "batch_size"} & set(fit_values):
        run_config.fit.auto_schedule = "images"


def refuse_sections(config: Path | None, command: str, sections: tuple[str, ...]) -> None:
    """A YAML section the command does not use is an error, not silently ignored."""
    if config is None:
        return
    from trainground.engine.config_io import read_yaml

    values = read_yaml(config)
    used = [s for s in sections if s in values]
    used += [f"data.{k}" for k in ("test_fraction", "noise") if k in (values.get("data") or {})]
    if used:
        raise ConfigError(f"{config}: {command} does not use {', '.join(used)}; remove them")


def main() -> None:
    """Console-script entry point."""
    app()
