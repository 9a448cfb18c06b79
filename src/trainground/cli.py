"""The ``trainground`` command line: thin wrappers that build configs and call the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trainground.cli_errors import err_console, inputs_exist, user_errors
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

@app.command()
@user_errors
def demo(
    root: Annotated[Path, typer.Option("--root", help="Folder the run directory is created in.")] = Path("runs"),
) -> None:
    """Train on bundled digits with 20 % injected label noise; write a run directory under runs/."""
    from trainground.recipes.demo import run_demo

    result = run_demo(root=root, console=out_console)
    if result.run_dir is not None:
        _report_summary(result.run_dir.path, write_html=True)


@app.command("fit")
@user_errors
def fit_command(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table.")] = None,
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
        if config is not None or ignore is not None:
            raise ConfigError("--resume continues a run with its own config.yaml; --config and --ignore cannot "
                              "change it")
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
            run_config.data.target = target
        if epochs is not None:
            run_config.fit.epochs = epochs
        if seed is not None:
            run_config.fit.seed = seed
        if ignore is not None:
            run_config.data.ignore = _columns(ignore)
        _auto_schedule(run_config, values, lr=None, epochs=epochs)
        if tensorboard is not None:
            run_config.logging.tensorboard = str(tensorboard)
        if mlflow is not None:
            run_config.logging.mlflow = run_config.logging.mlflow or MLflowConfig()
            run_config.logging.mlflow.tracking_uri = mlflow
        if out is None:
            stem = data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem
            out = RunDir.new_path("runs", f"fit-{stem}")
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
    _report_summary(out, write_html=False)


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
    config: ConfigOption = None,
    lr: LrOption = None,
    batch_size: BatchSizeOption = None,
    model: ModelOption = None,
    ignore: IgnoreOption = None,
) -> None:
    """Train once while recording every sample; find wrong labels, outliers, duplicates, ambiguous samples."""
    inputs_exist(data)
    from trainground.engine import RunDir
    from trainground.engine.rundir import check_inputs_outside
    from trainground.recipes.diagnose import diagnose as run_diagnose
    from trainground.recipes.diagnose import print_diagnosis

    run_config = _run_config(config, data, target=target, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                             model=model, ignore=ignore)
    _refuse_sections(config, "diagnose", ("loss", "logging"))
    if out is None:
        stem = data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem
        out = RunDir.new_path("runs", f"diagnose-{stem}")
    check_inputs_outside(out, [data, config])
    result = run_diagnose(data, target=run_config.data.target, out=out, overwrite=overwrite, fit_config=run_config.fit,
                          model_config=run_config.model, data_config=run_config.data, guard=run_config.guard)
    print_diagnosis(result, out_console, limit=top)
    _report_summary(out, write_html=True)


@app.command("report")
@user_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (demo, fit, diagnose) or a repair output folder.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: RUN_DIR/report.html).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
) -> None:
    """Render RUN_DIR's report.html: one offline page with curves, gradients, layers, findings and samples."""
    inputs_exist(run_dir=run_dir)
    from trainground.engine.rundir import check_output_file

    if out is not None:
        check_output_file(out, overwrite=overwrite)
    _report_summary(run_dir, write_html=True, out=out)


def _report_summary(run_dir: Path, *, write_html: bool, out: Path | None = None) -> None:
    """Write the run's report.html (when asked) and print the summary with the same top findings."""
    from trainground.report import print_report_summary, read_report, save_report

    report = read_report(run_dir)
    path = save_report(report, out if out is not None else Path(run_dir) / "report.html") if write_html else None
    print_report_summary(report, out_console, report_path=path)


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `trainground fit` or `demo`.")],
    data: Annotated[str, typer.Argument(help="Data with the same feature columns (or images) as the training data.")],
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write; default: print CSV to stdout.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
) -> None:
    """Predict a label and class probabilities for every row (or image) of DATA."""
    inputs_exist(data, run_dir=run_dir)
    from trainground.engine import predict as predict_frame

    from trainground.engine.rundir import check_output_file

    if out is not None:
        check_output_file(out, overwrite=overwrite)
    frame = predict_frame(run_dir, data)
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    from trainground.engine.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, frame.to_csv(index=False))
    err_console.print(f"wrote {len(frame)} predictions to {out}")


@app.command("findings")
@user_errors
def findings_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (with findings.json, or metrics to re-check).")],
    show_all: Annotated[bool, typer.Option("--all", help="Show every finding, info included, not only the top 10.")] = False,
    recompute: Annotated[bool, typer.Option("--recompute", help="Re-run the training checks on the run's files and "
                                                             "rewrite findings.json.")] = False,
) -> None:
    """Print the findings of a run (findings.json), most severe first."""
    inputs_exist(run_dir=run_dir)
    from trainground.diagnosis import Severity, print_findings, read_findings
    from trainground.diagnosis.run_dir import diagnose_run
    from trainground.engine import RunDir

    run = RunDir.open(run_dir)
    if recompute:
        found = diagnose_run(run, write=True)
    elif run.findings.is_file():
        found = read_findings(run.findings)
    else:
        raise ConfigError(f"{run.findings}: missing; train with a DiagnosisCallback, or pass --recompute")
    print_findings(found, console=out_console, limit=None if show_all else 10,
                   min_severity=Severity.INFO if show_all else Severity.WARNING)


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

    config = _run_config(config_file, data, target=target, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                         model=model, ignore=ignore)
    _refuse_sections(config_file, "repair", ("loss", "logging"))
    target = config.data.target
    if out is None:
        stem = data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem
        out = RunDir.new_path("runs", f"repair-{stem}")
    check_inputs_outside(out, [data, test, config_file, decisions])
    result = repair(data, target=target, out=out, test=test, overwrite=overwrite, config=config,
                    max_rounds=MAX_ROUNDS if rounds is None else rounds, console=err_console, repair_loss=loss,
                    decisions=decisions)
    print_repair(result, out_console)
    _report_summary(Path(out), write_html=True)  # report.html of the repair folder (issue 8's renderer)


@app.command("review")
@user_errors
def review_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (demo, diagnose) or a repair folder.")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1 exposes the "
                                                     "review to other machines (a warning says so).")] = "127.0.0.1",
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Name recorded with each decision (default: "
                                                                    "your login name; the page can change it).")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write the input table with the decisions applied "
                                                                 "to this file (and FILE.changes.csv), then exit.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --export's files if they exist.")] = False,
) -> None:
    """Review the flagged samples of RUN_DIR in a local web page; decisions are kept in RUN_DIR/review.sqlite."""
    inputs_exist(run_dir=run_dir)
    from trainground.review.serve import export_decisions, serve

    if export is not None:
        done = export_decisions(run_dir, export, overwrite=overwrite)
        out_console.print(f"wrote {done.table} ({done.rows} rows: {done.relabelled} relabelled, {done.excluded} "
                          f"excluded) and {done.changes}", highlight=False, soft_wrap=True)
        if done.conflicts:
            err_console.print(f"[yellow]warning:[/] {done.conflicts} sample(s) with conflicting decisions were left "
                              f"as given; see the note column of {done.changes}", highlight=False, soft_wrap=True)
        return
    serve(run_dir, host=host, port=port, reviewer=reviewer,
          say=lambda m: out_console.print(m, highlight=False, soft_wrap=True),
          warn=lambda m: err_console.print(f"[yellow]warning:[/] {m}", highlight=False, soft_wrap=True))


@app.command("lr-find")
@user_errors
def lr_find_command(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write (default: runs/lr-find-<data>-<time>).")] = None,
    start: Annotated[float, typer.Option("--start", min=0.0, help="First learning rate of the sweep.")] = 1e-7,
    end: Annotated[float, typer.Option("--end", min=0.0, help="Last learning rate of the sweep.")] = 10.0,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Optimizer steps (one batch each).")] = 100,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the model init, split and batch order.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
    config: ConfigOption = None,
    batch_size: BatchSizeOption = None,
    model: ModelOption = None,
    ignore: IgnoreOption = None,
) -> None:
    """Learning-rate range test: sweep the lr exponentially, plot the loss, suggest an lr (config.yaml holds it)."""
    inputs_exist(data)
    from trainground.engine import RunDir
    from trainground.engine.lr_find import LRFindConfig
    from trainground.engine.rundir import check_inputs_outside
    from trainground.tune import lr_find

    run_config = _run_config(config, data, target=target, epochs=None, seed=seed, lr=None, batch_size=batch_size,
                             model=model, ignore=ignore)
    run_config.fit.auto_schedule = "never"
    if out is None:
        stem = data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem
        out = RunDir.new_path("runs", f"lr-find-{stem}")
    check_inputs_outside(out, [data, config])
    found = lr_find(run_config, out=out, sweep=LRFindConfig(start=start, end=end, steps=steps), overwrite=overwrite)
    r = found.result
    steep = f", steepest fall at {r.steepest_lr:.3g}" if r.steepest_lr is not None else ""
    out_console.print(f"suggested lr [bold]{r.suggestion:.3g}[/] ({r.rule}); minimum at {r.min_lr:.3g}{steep}; "
                      f"sweep stopped: {r.stopped} after {len(r.lrs)} steps", highlight=False, soft_wrap=True)
    out_console.print(f"use it: trainground fit {data} --config {found.run_dir.config}", highlight=False,
                      soft_wrap=True)
    _report_summary(found.run_dir.path, write_html=True)


@app.command("tune")
@user_errors
def tune_command(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, image folder (one sub-folder per class) or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", help="Label column of a table.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials this worker runs (tune.trials).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.0, help="Seconds after which no trial starts.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="SQLAlchemy URL or journal:PATH (default: "
                                                                  "sqlite OUT/study.db); workers share it.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name in the storage (tune.study).")] = None,
    warm_start: Annotated[str | None, typer.Option("--warm-start", help="Earlier tune folder or study name: its best "
                                                                        "trials run first.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs per trial (fit.epochs).")] = None,
    pruner: Annotated[str | None, typer.Option("--pruner", help="median, hyperband or none (tune.pruner).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="tpe or random (tune.sampler).")] = None,
    no_diagnosis_pruning: Annotated[bool, typer.Option(
        "--no-diagnosis-pruning", help="Do not prune trials whose training diagnosis finds a pathology.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Tune folder (default: runs/tune-<data>); an existing "
                                                          "tune folder is joined.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML: sections data, model, fit, loss, guard (the "
                                                                "base config), tune (options) and space.")] = None,
) -> None:
    """Search hyper-parameters with Optuna (TPE, pruning, diagnosis-aware pruning); write best_config.yaml."""
    inputs_exist(data)
    from trainground.engine.rundir import check_inputs_outside
    from trainground.tune.config import cli_overrides, read_tune_file
    from trainground.tune.study import tune
    from trainground.tune.summary import print_tune_summary

    spec = read_tune_file(config)
    base, options = cli_overrides(spec, data, target=target, epochs=epochs, trials=trials, timeout=timeout,
                                  storage=storage, study=study, pruner=pruner, sampler=sampler,
                                  diagnosis_pruning=False if no_diagnosis_pruning else None)
    if out is None:
        stem = data.split(":", 1)[1] if data.startswith("builtin:") else Path(data).stem
        out = Path("runs") / f"tune-{stem}"
    check_inputs_outside(out, [data, config])
    result = tune(base, out=out, options=options, space=spec.space, warm_from=warm_start,
                  space_given=spec.space_given,
                  progress=lambda line: err_console.print(line, highlight=False, soft_wrap=True))
    print_tune_summary(result.summary, result.out, data=data, metric=options.metric, console=out_console)


@app.command("explain")
@user_errors
def explain_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (fit, diagnose, demo).")],
    method: Annotated[str, typer.Option("--method", help="integrated_gradients (default), saliency, or for tables "
                                                        "kernel_shap / lime.")] = "integrated_gradients",
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="Flagged samples explained.")] = None,
) -> None:
    """Attributions (Captum) for RUN_DIR's flagged samples and classes; shown in its report.html."""
    inputs_exist(run_dir=run_dir)
    from trainground.engine.config_io import from_dict
    from trainground.explain import ExplainConfig, explain_run

    values: dict[str, Any] = {"method": method}
    if samples is not None:
        values["samples"] = samples
    record = explain_run(run_dir, config=from_dict(ExplainConfig, values, "options"))
    out_console.print(f"{record['method']}: {len(record['per_class'])} classes, {len(record['samples'])} flagged "
                      f"samples explained -> {run_dir / 'explanations.json'}", highlight=False, soft_wrap=True)
    _report_summary(run_dir, write_html=True)


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _run_config(
    config: Path | None, data: str, *, target: str | None, epochs: int | None, seed: int | None, lr: float | None,
    batch_size: int | None, model: str | None, ignore: str | None,
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
    _auto_schedule(run_config, values, lr=lr, epochs=epochs, batch_size=batch_size)
    if model is not None:  # checked like the YAML's model.name
        run_config.model = from_dict(ModelConfig, {**vars(run_config.model), "name": model}, "--model")
    if ignore is not None:
        run_config.data.ignore = _columns(ignore)
    return run_config


def _auto_schedule(
    run_config: Any, values: dict, *, lr: float | None, epochs: int | None, batch_size: int | None = None
) -> None:
    """The image recipe's default: lr, batch and epochs chosen from the data unless the user set one."""
    fit_values = values.get("fit") or {}
    given = lr is not None or epochs is not None or batch_size is not None
    if "auto_schedule" not in fit_values and not given and not {"lr", "epochs", "batch_size"} & set(fit_values):
        run_config.fit.auto_schedule = "images"


def _refuse_sections(config: Path | None, command: str, sections: tuple[str, ...]) -> None:
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


if __name__ == "__main__":
    main()
