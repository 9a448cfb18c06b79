"""A rich progress bar over all training steps, with the latest epoch's metrics."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState


def _summary(metrics: dict[str, float]) -> str:
    names = {"train_loss": "loss", "train_accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}
    parts = []
    for key, name in names.items():
        if key in metrics:
            value = metrics[key]
            parts.append(f"{name} {value:.1%}" if key.endswith("accuracy") else f"{name} {value:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """Live bar on a terminal; one line per epoch otherwise (CI logs, pipes).

    Updates only touch host-side counters: the bar never forces a device sync.
    """

    def __init__(self, console: Console | None = None, *, description: str = "training") -> None:
        self.console = console or Console(stderr=True)
        self.description = description
        self._progress: Progress | None = None
        self._task = None

    def on_fit_start(self, state: TrainState) -> None:
        total = state.num_epochs * state.steps_per_epoch
        if not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task(
            self.description, total=total, completed=state.step, epoch=state.epoch + 1, metrics=""
        )
        self._progress.start()

    def on_batch_end(self, state: TrainState) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.step, epoch=state.epoch + 1)

    def on_epoch_end(self, state: TrainState) -> None:
        text = _summary(state.epoch_metrics)
        if self._progress is not None:
            self._progress.update(self._task, metrics=text)
        else:
            self.console.print(f"epoch {state.epoch + 1}/{state.num_epochs}  {text}", highlight=False, soft_wrap=True)

    def on_fit_end(self, state: TrainState) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
