"""``trainground recipe faults``: fault type x severity, multi-task, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainground.cli.app import out_console
from trainground.cli.recipe import recipe_app
from trainground.cli_errors import inputs_exist, user_errors


@recipe_app.command("faults")
@user_errors
def faults_command(
    config: Annotated[Path | None, typer.Option("--config", help="YAML like examples/faults.yaml (default: its values).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/faults-<time>).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=50, help="Signals used (a stratified share of the data; "
                                                                  "builtin:faults has 6000).")] = 2000,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the training data.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the model init, split and batch order.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
) -> None:
    """Multi-task CE over fault type x severity with class and event weights, per-task clipping and the
    Guard; diagnose every task's labels; score a held-out split; write the report."""
    inputs_exist(config)
    from trainground.engine import ProgressBar, RunDir
    from trainground.recipes.faults import faults_config, run_faults
    from trainground.cli_errors import err_console

    run_config = faults_config(config, epochs=epochs, seed=seed)
    out = out or RunDir.new_path("runs", "faults")
    run_faults(run_config, out=out, samples=samples, overwrite=overwrite, console=out_console,
               callbacks=[ProgressBar(err_console)])
