"""``trainground recipe gan``: a guarded GAN on bundled digits, its generative metrics, checks and report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from trainground.diagnosis.findings import Finding
from trainground.diagnosis.gan import diagnose_gan
from trainground.engine.atomic import atomic_write_text
from trainground.engine.callbacks import Callback
from trainground.engine.config_io import from_dict, read_yaml, to_dict
from trainground.engine.gan import GanConfig, GanRun, train_gan
from trainground.engine.rundir import RunDir
from trainground.jsonsafe import json_safe


class _EpochLine(Callback):
    """One console line per epoch: both players' losses and the generative metrics."""

    def __init__(self, console: Console) -> None:
        self.console, self.start = console, time.perf_counter()

    def on_epoch_end(self, state: Any) -> None:
        m = state.epoch_metrics
        gen = "" if "gen_f1" not in m else (f"  F1 {m['gen_f1']:.3f}  Frechet {m['gen_frechet']:.1f}  "
                                            f"coverage {m['gen_mode_coverage']:.2f}  SSIM {m['gen_ssim_intra']:.3f}")
        self.console.print(f"epoch {state.epoch + 1:>3}/{state.config.epochs}  D {m['discriminator_loss']:.3f}  "
                           f"G {m['generator_loss']:.3f}{gen}  ({time.perf_counter() - self.start:.0f} s)")


def load_gan_config(path: str | Path | None, **overrides: Any) -> GanConfig:
    """Defaults < the YAML at ``path`` < ``overrides`` (dotted keys such as ``train.epochs``)."""
    values: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = values
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(GanConfig, values, f"{path}:" if path is not None else "gan config:")


def run_gan(config: GanConfig, *, out: str | Path | None = None, overwrite: bool = False, resume: bool = False,
            console: Console | None = None) -> tuple[GanRun, list[Finding], RunDir]:
    """Train, evaluate and diagnose; the run folder gets ``generative_metrics.json`` and ``findings.json``."""
    console = console or Console()
    if resume:
        if out is None:
            raise ValueError("resume needs the run folder (--out)")
        run = RunDir.open(out, write=True)
    else:
        run = RunDir.create(out if out is not None else RunDir.new_path("runs", "gan"), overwrite=overwrite)
        run.write_config(to_dict(config))
    console.print(f"[bold]trainground recipe gan[/]: {run.path}  (digits {config.side}x{config.side}, "
                  f"discriminator scales {list(config.scales)}, {config.loss} loss, {config.train.epochs} epochs)")
    gan = train_gan(config, run_dir=run, resume=resume, callbacks=[_EpochLine(console)])
    summary = {"final": gan.final, "real_reference": gan.reference, "seconds": gan.seconds}
    atomic_write_text(run.path / "generative_metrics.json", json.dumps(json_safe(summary), indent=2) + "\n")
    findings = diagnose_gan(run.path)
    return gan, findings, run
