"""Commands around a run: the learning-rate range test, hyper-parameter search, attributions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trainground.cli.app import (
    BatchSizeOption,
    ConfigOption,
    IgnoreOption,
    ModelOption,
    app,
    build_run_config,
    data_stem,
    out_console,
    report_summary,
)
from trainground.cli_errors import err_console, inputs_exist, user_errors


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

    run_config = build_run_config(config, data, target=target, epochs=None, seed=seed, lr=None, batch_size=batch_size,
                             model=model, ignore=ignore)
    run_config.fit.auto_schedule = "never"
    if out is None:
        out = RunDir.new_path("runs", f"lr-find-{data_stem(data)}")
    check_inputs_outside(out, [data, config])
    found = lr_find(run_config, out=out, sweep=LRFindConfig(start=start, end=end, steps=steps), overwrite=overwrite)
    r = found.result
    steep = f", steepest fall at {r.steepest_lr:.3g}" if r.steepest_lr is not None else ""
    out_console.print(f"suggested lr [bold]{r.suggestion:.3g}[/] ({r.rule}); minimum at {r.min_lr:.3g}{steep}; "
                      f"sweep stopped: {r.stopped} after {len(r.lrs)} steps", highlight=False, soft_wrap=True)
    out_console.print(f"use it: trainground fit {data} --config {found.run_dir.config}", highlight=False,
                      soft_wrap=True)
    report_summary(found.run_dir.path, write_html=True)


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
        out = Path("runs") / f"tune-{data_stem(data)}"
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
    report_summary(run_dir, write_html=True)
