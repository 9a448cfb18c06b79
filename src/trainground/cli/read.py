"""Commands that read a finished run: report, predict, findings, review."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trainground.cli.app import app, out_console, report_summary
from trainground.cli_errors import err_console, inputs_exist, user_errors
from trainground.errors import ConfigError


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
    if (run_dir / "metrics-generator.jsonl").is_file():  # a two-player run of `trainground recipe gan`
        from trainground.report.gan import save_gan_report

        out_console.print(f"report: {save_gan_report(run_dir, out)}")
        return
    report_summary(run_dir, write_html=True, out=out)


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
