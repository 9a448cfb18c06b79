"""Commands that train: demo, fit, diagnose, repair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainground.cli.app import (
    BatchSizeOption,
    ClassifyOption,
    ConfigOption,
    IgnoreOption,
    LrOption,
    ModelOption,
    RegressionOption,
    app,
    apply_task_kinds,
    auto_schedule,
    build_run_config,
    data_stem,
    out_console,
    refuse_sections,
    report_summary,
    split_columns,
)
from trainground.cli_errors import err_console, inputs_exist, user_errors
from trainground.errors import ConfigError


@app.command()
@user_errors
def demo(
    root: Annotated[Path, typer.Option("--root", help="Folder the run directory is created in.")] = Path("runs"),
) -> None:
    """Train on bundled digits with 20 % injected label noise; write a run directory under runs/."""
    from trainground.recipes.demo import run_demo

    result = run_demo(root=root, console=out_console)
    if result.run_dir is not None:
        report_summary(result.run_dir.path, write_html=True)


@app.command("fit")
@user_errors
def fit_command(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table; several, comma-separated "
                                                              "(fault,severity), train one head per column.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/fit-<data>-<time>).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the training data.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the model init, split and batch order.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML with sections data, model, fit.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    tensorboard: Annotated[Path | None, typer.Option(
        "--tensorboard", help="Also log the scalars to this TensorBoard log directory "
                              "(pip install 'trainground[tensorboard]').")] = None,
    mlflow: Annotated[str | None, typer.Option(
        "--mlflow", help="Also log the scalars and the config to this MLflow tracking URI, e.g. "
                         "sqlite:///mlflow.db (pip install 'trainground[mlflow]').")] = None,
    ignore: IgnoreOption = None,
    regression: RegressionOption = None,
    classify: ClassifyOption = None,
) -> None:
    """Train a model on DATA and write a run directory."""
    inputs_exist(data)
    from trainground.diagnosis import DiagnosisCallback, Severity, print_findings
    from trainground.engine import MLflowConfig, ProgressBar, RunConfig, RunDir, run_fit
    from trainground.engine.run import resume_config
    from trainground.engine.rundir import check_inputs_outside
    from trainground.integrations import build_loggers
    from trainground.recipes.demo import print_summary

    if resume:
        if out is None:
            raise ConfigError("--resume needs --out RUN_DIR, the run to continue")
        if overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; choose one")
        if config is not None or ignore is not None or regression is not None or classify is not None:
            raise ConfigError("--resume continues a run with its own config.yaml; --config, --ignore, --regression "
                              "and --classify cannot change it")
        if tensorboard is not None or mlflow is not None:
            raise ConfigError("--resume logs where the run's config.yaml says (section logging); "
                              "--tensorboard and --mlflow cannot change it")
        run_config = resume_config(RunDir.open(out), source=data, epochs=epochs, target=target, seed=seed)
    else:
        # Precedence: defaults < YAML file < command-line options.
        from trainground.engine.config_io import read_yaml

        values = read_yaml(config) if config is not None else {}
        run_config = RunConfig.from_dict(values, where=f"{config}:" if config else "config")
        run_config.data.source = data
        if target is not None:
            from trainground.data.multitable import target_value

            run_config.data.target = target_value(target)
        if epochs is not None:
            run_config.fit.epochs = epochs
        if seed is not None:
            run_config.fit.seed = seed
        if ignore is not None:
            run_config.data.ignore = split_columns(ignore)
        apply_task_kinds(run_config, regression=regression, classify=classify)
        auto_schedule(run_config, values, lr=None, epochs=epochs)
        if tensorboard is not None:
            run_config.logging.tensorboard = str(tensorboard)
        if mlflow is not None:
            run_config.logging.mlflow = run_config.logging.mlflow or MLflowConfig()
            run_config.logging.mlflow.tracking_uri = mlflow
        if out is None:
            out = RunDir.new_path("runs", f"fit-{data_stem(data)}")
        check_inputs_outside(out, [data, config])
    # Every run is watched by the training diagnosis: findings.json and layers.parquet in the run.
    diagnosis = DiagnosisCallback()
    # TensorBoard / MLflow copies of the scalars, as the config's logging section asks (after the
    # others, so a resumed run finds their checkpoint state under the same keys).
    loggers = build_loggers(run_config.logging)
    result = run_fit(
        run_config, out=out, overwrite=overwrite, resume=resume,
        callbacks=[ProgressBar(err_console), diagnosis, *loggers],
    )
    print_summary(result, out_console)
    for logger in loggers:
        out_console.print(logger.destination(), highlight=False, soft_wrap=True)
    print_findings(diagnosis.findings, console=out_console, min_severity=Severity.WARNING, title="Training findings")
    report_summary(out, write_html=False)


@app.command()
@user_errors
def diagnose(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/diagnose-<data>-<time>).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the training data.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the model init, split and batch order.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="How many findings and sample issues to print.")] = 10,
    second_pass: Annotated[bool, typer.Option(
        "--second-pass/--no-second-pass", help="Train a second time on the samples the first training trusts "
        "(better label issues, about twice the training time).")] = True,
    config: ConfigOption = None,
    lr: LrOption = None,
    batch_size: BatchSizeOption = None,
    model: ModelOption = None,
    ignore: IgnoreOption = None,
    regression: RegressionOption = None,
    classify: ClassifyOption = None,
) -> None:
    """Train once while recording every sample; find wrong labels, outliers, duplicates, ambiguous samples."""
    inputs_exist(data)
    from trainground.engine import RunDir
    from trainground.engine.rundir import check_inputs_outside
    from trainground.recipes.diagnose import diagnose as run_diagnose
    from trainground.recipes.diagnose import print_diagnosis

    run_config = build_run_config(config, data, target=target, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                                  model=model, ignore=ignore, regression=regression, classify=classify)
    refuse_sections(config, "diagnose", ("loss", "logging"))
    if out is None:
        out = RunDir.new_path("runs", f"diagnose-{data_stem(data)}")
    check_inputs_outside(out, [data, config])
    result = run_diagnose(data, target=run_config.data.target, out=out, overwrite=overwrite, fit_config=run_config.fit,
                          model_config=run_config.model, data_config=run_config.data, guard=run_config.guard,
                          second_pass=second_pass)
    print_diagnosis(result, out_console, limit=top)
    report_summary(out, write_html=True)


@app.command("repair")
@user_errors
def repair_command(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Repair folder (default: runs/repair-<data>-<time>).")] = None,
    test: Annotated[str | None, typer.Option("--test", help="Held-out data with labels, only reported (never used to "
                                                         "decide).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the training data per round.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the model init, splits and batch order.")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", min=0, help="Most repair rounds after the diagnosis.")] = None,
    loss: Annotated[str, typer.Option("--loss", help="Loss of every round: gce (generalized cross-entropy, robust to "
                                                      "the noise the repair misses; the better model) or ce (calibrated "
                                                      "probabilities; more reliable relabels when the model is weak).")] = "gce",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier repair.")] = False,
    decisions: Annotated[Path | None, typer.Option(
        "--decisions", help="A review's changes file (trainground review RUN --export corrected.csv writes "
                            "corrected.changes.csv): its labels are fixed, never changed by the repair.")] = None,
    config_file: ConfigOption = None,
    lr: LrOption = None,
    batch_size: BatchSizeOption = None,
    model: ModelOption = None,
    ignore: IgnoreOption = None,
) -> None:
    """Diagnose DATA, relabel / quarantine / reweight what is wrong, retrain, keep what helps; the input is never modified."""
    inputs_exist(data, test, decisions)
    from trainground.engine import RunDir
    from trainground.engine.rundir import check_inputs_outside
    from trainground.recipes.repair import MAX_ROUNDS, print_repair, repair

    config = build_run_config(config_file, data, target=target, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                         model=model, ignore=ignore)
    refuse_sections(config_file, "repair", ("loss", "logging"))
    target = config.data.target
    from trainground.data.multitable import target_list

    if target_list(target) is not None:
        raise ConfigError(f"repair takes one label column, --target {target} names several; diagnose them with "
                          "`trainground diagnose DATA --target a,b` (per-task label issues), or repair one column "
                          "at a time")
    if out is None:
        out = RunDir.new_path("runs", f"repair-{data_stem(data)}")
    check_inputs_outside(out, [data, test, config_file, decisions])
    result = repair(data, target=target, out=out, test=test, overwrite=overwrite, config=config,
                    max_rounds=MAX_ROUNDS if rounds is None else rounds, console=err_console, repair_loss=loss,
                    decisions=decisions)
    print_repair(result, out_console)
    report_summary(Path(out), write_html=True)  # report.html of the repair folder (issue 8's renderer)
