"""``trainground demo``: the whole story on bundled data, with no arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from trainground.engine import (
    DataConfig,
    FitConfig,
    NoiseConfig,
    PreparedData,
    ProgressBar,
    RunConfig,
    RunDir,
    RunResult,
    prepare_data,
)
from trainground.engine.evaluate import predict_logits
from trainground.recipes.diagnose import Diagnosis, diagnose_dataset, print_diagnosis

DEMO_CONFIG = RunConfig(
    # scikit-learn's bundled digits: 1797 8x8 images as 64 features, 10 classes.
    # A clean 20 % test split is held out first; 20 % of the remaining labels are
    # then corrupted, as happens with hurried or crowd-sourced labelling.
    data=DataConfig(source="builtin:digits", test_fraction=0.2, noise=NoiseConfig(kind="symmetric", rate=0.2, seed=0)),
    fit=FitConfig(epochs=20, seed=0),
)


def run_demo(*, root: str | Path = "runs", console: Console | None = None) -> Diagnosis:
    """Train on digits with 20 % injected label noise, diagnose the run and the samples, print it all.

    The demo corrupts the labels itself, so it can also say how many of the corrupted ones
    the diagnosis found: something no real dataset can tell you.
    """
    console = console or Console()
    run = RunDir.create(RunDir.new_path(root, "demo"))
    run.write_config(DEMO_CONFIG.to_dict())
    console.print(
        "[bold]trainground demo[/]: digits (scikit-learn), 20 % of the training labels corrupted on purpose; "
        "one guarded training watched by every monitor, then the training, sample and dataset checks.",
        soft_wrap=True,
    )
    prepared = prepare_data(DEMO_CONFIG.data)
    result = diagnose_dataset(
        prepared.train, fit_config=DEMO_CONFIG.fit, model_config=DEMO_CONFIG.model, run_dir=run,
        extra_callbacks=[ProgressBar(console)],
    )
    test_accuracy = None
    if prepared.test is not None:
        model = result.fit.model
        logits = predict_logits(model, prepared.test.features, device=next(model.parameters()).device)
        test_accuracy = float((logits.argmax(1) == prepared.test.labels).double().mean())
        with open(run.metrics, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": "test", "step": result.fit.steps, "test_accuracy": test_accuracy}) + "\n")
    print_diagnosis(result, console)
    _print_outcome(result, prepared, test_accuracy, console)
    return result


def _print_outcome(result: Diagnosis, prepared: PreparedData, test_accuracy: float | None, console: Console) -> None:
    table = Table(title="demo outcome", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    final = result.fit.final
    table.add_row("training", f"{len(result.fit.history)} epochs (early-learning window ends at epoch "
                  f"{result.early_learning_epoch}), {result.fit.steps} steps, {result.seconds:.1f} s in all")
    table.add_row("validation accuracy", f"{final.get('val_accuracy', float('nan')):.1%} (against the labels as given)")
    if test_accuracy is not None:
        table.add_row("test accuracy", f"{test_accuracy:.1%} (clean labels, never trained on)")
    if prepared.is_corrupted is not None:
        rows = {int(i): k for k, i in enumerate(prepared.train.index.numpy())}
        truth = np.zeros(len(result.table), dtype=bool)
        positions = result.table["index"].map(rows).to_numpy()
        truth[:] = prepared.is_corrupted[positions]
        flagged = result.table["is_label_issue"].to_numpy(dtype=bool)
        hits = int((flagged & truth).sum())
        precision = hits / max(int(flagged.sum()), 1)
        table.add_row(
            "corrupted labels found",
            f"{hits} of {int(truth.sum())} corrupted labels flagged ({hits / max(int(truth.sum()), 1):.0%} recall), "
            f"{int(flagged.sum())} flagged in all ({precision:.0%} precision)",
        )
        suggested = result.table["suggested_label"].to_numpy()
        true_labels = prepared.train.encoder.decode(prepared.true_labels[positions])
        right = int((np.asarray(suggested)[flagged & truth] == np.asarray(true_labels)[flagged & truth]).sum())
        table.add_row("suggested labels", f"{right} of the {hits} found get their true label back as the suggestion")
    table.add_row("run directory", str(result.run_dir.path) if result.run_dir else "-")
    console.print(table)
    if prepared.is_corrupted is not None:
        console.print(
            f"{int(prepared.is_corrupted.sum())} of {len(prepared.train)} training labels are wrong on purpose; "
            "the demo knows which, a real dataset would not. sample_issues.csv in the run directory lists every "
            "sample with its scores; findings.json has the findings.",
            soft_wrap=True,
        )


def print_summary(result: RunResult, console: Console) -> None:
    s = result.summary()
    table = Table(title="run summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    corrupted = s["corrupted_labels"]
    table.add_row("training samples", f"{s['samples']} ({corrupted} with a corrupted label)" if corrupted else str(s["samples"]))
    table.add_row("training", f"{s['epochs']} epochs, {s['steps']} steps, {s['seconds']:.1f} s")
    if s["train_accuracy"] is not None:
        table.add_row("train accuracy", f"{s['train_accuracy']:.1%} (against the labels as given)")
    for key, value in result.val_scores.items():  # regression tasks, in the target's own units
        if key.startswith(("val_mae/", "val_r2/")):
            metric, task = key[4:].split("/", 1)
            table.add_row(f"validation {'MAE' if metric == 'mae' else 'R^2'} ({task})", f"{value:.4g}")
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
