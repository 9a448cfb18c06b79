"""``trainground recipe fusion``: image + text -> score and boxes, with per-modality clipping."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainground.cli.app import out_console
from trainground.cli.recipe import recipe_app
from trainground.cli_errors import user_errors


@recipe_app.command("fusion")
@user_errors
def fusion_command(
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/fusion-<time>).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=50, help="Training samples generated (10 % validate).")] = 1500,
    test_samples: Annotated[int, typer.Option("--test-samples", min=10, help="Held-out samples (another seed).")] = 1000,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training data.")] = 12,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the data, init and batch order.")] = 0,
    clip: Annotated[str, typer.Option("--clip", help="global | modality: one clip, or one per modality.")] = "modality",
    task_clip: Annotated[bool, typer.Option("--task-clip/--no-task-clip", help="Clip each task's gradient.")] = True,
    weighting: Annotated[str, typer.Option("--weighting", help="static | uncertainty | dwa task weighting.")] = "uncertainty",
    thresholds: Annotated[str, typer.Option(
        "--thresholds", help="fixed | percentile | zscore: fixed clip limits, or each task's and modality's limit "
                             "following its own gradient norm (AutoClip / ZClip per part).")] = "fixed",
    box_abstain: Annotated[str, typer.Option(
        "--box-abstain", help="unmatched | group | none: the labelled boxes the wrong-box check does not judge "
                              "(no predicted box overlaps them; a class x size group the detector rarely "
                              "localises; none).")] = "unmatched",
    box_rule: Annotated[str, typer.Option(
        "--box-rule", help="peers | agree | match: only the wrong-box flags the object's early-learning loss, "
                           "scored against the box's class x size peers, confirms (z >= 2; missing flags z >= 3.5), "
                           "and boxes no prediction covers judged by that loss alone; the loss against all boxes "
                           "at z >= 2, unmatched boxes not judged; or the flags as they are.")] = "peers",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
) -> None:
    """Train the fusion model (small CNN + bag-of-embeddings text encoder) on builtin:products through
    fit with per-task/per-modality clipping and task weighting; score a held-out split (MAE, R^2,
    mAP@0.5) and flag suspicious training scores and boxes."""
    from trainground.cli_errors import err_console
    from trainground.engine import ProgressBar, RunDir
    from trainground.errors import ConfigError
    from trainground.recipes.fusion import FusionRecipeConfig, run_fusion

    if clip not in ("global", "modality"):
        raise ConfigError(f"--clip must be global or modality, got {clip!r}")
    if weighting not in ("static", "uncertainty", "dwa"):
        raise ConfigError(f"--weighting must be static, uncertainty or dwa, got {weighting!r}")
    if thresholds not in ("fixed", "percentile", "zscore"):
        raise ConfigError(f"--thresholds must be fixed, percentile or zscore, got {thresholds!r}")
    if box_abstain not in ("unmatched", "group", "none"):
        raise ConfigError(f"--box-abstain must be unmatched, group or none, got {box_abstain!r}")
    if box_rule not in ("match", "agree", "peers"):
        raise ConfigError(f"--box-rule must be match, agree or peers, got {box_rule!r}")
    config = FusionRecipeConfig(samples=samples, test_samples=test_samples, epochs=epochs, seed=seed,
                                clip=clip, task_clip=task_clip, weighting=weighting,  # type: ignore[arg-type]
                                thresholds=thresholds, box_abstain=box_abstain,  # type: ignore[arg-type]
                                box_rule=box_rule)  # type: ignore[arg-type]
    run_fusion(config, out=out or RunDir.new_path("runs", "fusion"), overwrite=overwrite, console=out_console,
               callbacks=[ProgressBar(err_console)])


__all__ = ["fusion_command"]
