"""``trainground recipe gan``: train a guarded GAN on bundled digits and read it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trainground.cli.app import out_console
from trainground.cli.recipe import recipe_app
from trainground.cli_errors import user_errors


@recipe_app.command("gan")
@user_errors
def gan_command(
    config: Annotated[Path | None, typer.Option("--config", help="YAML of GanConfig (see examples/gan.yaml).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/gan-<time>).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the digits (train.epochs).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the models and the noise.")] = None,
    single_resolution: Annotated[bool, typer.Option(
        "--single-resolution", help="One discriminator head on the full image (scales: [1]).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier run.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
) -> None:
    """A DCGAN-style generator against a multi-resolution discriminator on digits (16x16), each player
    stepped through its own Guard; writes per-player metrics, sample grids per epoch, generative
    metrics (precision, recall, F1, Frechet distance, mode coverage, SSIM), GAN findings and report.html."""
    from trainground.recipes.gan import load_gan_config, run_gan
    from trainground.report.gan import save_gan_report

    if resume and config is None and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"  # the run's own resolved config
    cfg = load_gan_config(config, **{"train.epochs": epochs, "seed": seed,
                                     "scales": [1] if single_resolution else None})
    gan, findings, run = run_gan(cfg, out=out, overwrite=overwrite, resume=resume, console=out_console)
    report = save_gan_report(run.path)
    f = gan.final
    out_console.print(f"final: precision {f['precision']:.3f}  recall {f['recall']:.3f}  F1 {f['f1']:.3f}  "
                      f"Frechet {f['frechet']:.1f}  mode coverage {f['mode_coverage']:.2f}  "
                      f"SSIM between samples {f['ssim_intra']:.3f} (real digits: F1 {gan.reference['f1']:.3f}, "
                      f"SSIM {gan.reference['ssim_intra']:.3f})")
    for finding in findings:
        out_console.print(escape(f"[{finding.severity.value}] {finding.check}: {finding.message}"))
    if not findings:
        out_console.print("GAN checks: nothing found (mode collapse, discriminator overpowering, oscillation)")
    out_console.print(f"report: {report}")
