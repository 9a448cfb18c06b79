"""``trainground demo``: the whole story on bundled data, with no arguments."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainground.engine import (
    DataConfig,
    FitConfig,
    NoiseConfig,
    ProgressBar,
    RunConfig,
    RunDir,
    RunResult,
    run_fit,
)

DEMO_CONFIG = RunConfig(
    # scikit-learn's bundled digits: 1797 8x8 images as 64 features, 10 classes.
    # A clean 20 % test split is held out first; 20 % of the remaining labels are
    # then corrupted, as happens with hurried or crowd-sourced labelling.
    data=DataConfig(source="builtin:digits", test_fraction=0.2, noise=NoiseConfig(kind="symmetric", rate=0.2, seed=0)),
    fit=FitConfig(epochs=20, seed=0),
)


def run_demo(*, root: str | Path = "runs", console: Console | None = None) -> RunResult:
    """Train on digits with 20 % injected label noise and print what happened."""
    console = console or Console()
    out = RunDir.new_path(root, "demo")
    console.print(
        "[bold]trainground demo[/]: digits (scikit-learn), 20 % of the training labels corrupted on purpose, "
        "MLP, 20 epochs."
    )
    result = run_fit(DEMO_CONFIG, out=out, callbacks=[ProgressBar(console)])
    print_summary(result, console)
    return result


def print_summary(result: RunResult, console: Console) -> None:
    s = result.summary()
    table = Table(title="run summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    corrupted = s["corrupted_labels"]
    table.add_row("training samples", f"{s['samples']} ({corrupted} with a corrupted label)" if corrupted else str(s["samples"]))
    table.add_row("training", f"{s['epochs']} epochs, {s['steps']} steps, {s['seconds']:.1f} s")
    table.add_row("train accuracy", f"{s['train_accuracy']:.1%} (against the labels as given)")
    if s["val_accuracy"] is not None:
        table.add_row("validation accuracy", f"{s['val_accuracy']:.1%} (against the labels as given)")
    if s["test_accuracy"] is not None:
        table.add_row("test accuracy", f"{s['test_accuracy']:.1%} (clean labels, never trained on)")
    table.add_row("run directory", s["run_dir"])
    console.print(table)
    if corrupted:
        console.print(
            f"{corrupted} of {s['samples']} training labels are wrong on purpose, so train and validation "
            "accuracy are measured against partly wrong labels; the test accuracy is against clean ones.",
            soft_wrap=True,
        )
    console.print(f"Predict with: trainground predict {s['run_dir']} DATA", highlight=False, soft_wrap=True)
