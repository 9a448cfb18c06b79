"""``Watch``: the Guard, the monitors, the checks and the per-sample diagnosis in your own loop.

::

    watch = Watch(model, optimizer, train_set, val_set, run_dir="runs/mine")
    train_loader = DataLoader(watch.train_data, batch_size=64, shuffle=True)  # (index, x, y)
    val_loader = DataLoader(watch.val_data, batch_size=256)
    for epoch in range(20):
        model.train()
        for index, x, y in train_loader:
            with watch.guard.autocast():
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            watch.backward(loss, index=index, logits=logits, labels=y)   # was loss.backward()
            watch.step()                                                  # was optimizer.step()
        model.eval()
        with torch.no_grad():
            for index, x, y in val_loader:
                watch.record_val(index, model(x), y)
        if watch.end_epoch():        # True once the validation loss stopped improving
            break
    result = watch.finish()          # sample_issues.csv, findings.json, report.html
    # or, with one more training: watch.finish(second_pass=SecondPass(model=fresh_model()))

A training forward pass (model in train mode) opens a batch through a forward pre-hook on
the model, so the sampled activation statistics see exactly the training forward.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from trainground.data import WithIndex
from trainground.engine import RunDir
from trainground.errors import ConfigError
from trainground.gradients import ActionLog, Guard, GuardConfig
from trainground.integrations.gather import rank
from trainground.integrations.second_pass import SecondPass, stack_inputs
from trainground.integrations.session import SessionConfig, SessionResult, TrainingSession
from trainground.monitors import penultimate_module


class Watch:
    """Wraps an ordinary PyTorch loop's step; see the module docstring for the loop.

    Args:
        model: your model (logits out).
        optimizer: your optimizer.
        train_data: a map-style dataset of ``(x, y)``; ``watch.train_data`` yields
            ``(index, x, y)`` with index = position.
        val_data: optional validation dataset of ``(x, y)``; its indices continue after the
            training set's (``index - len(train_data)`` is the position in ``val_data``).
        run_dir: where to write the run; None keeps everything in memory.
        num_classes: width of the logits (default: ``out_features`` of the last ``nn.Linear``).
        classes: class names in id order, for ``sample_issues.csv``.
        guard: a ``GuardConfig`` or a ready ``Guard`` over ``model``/``optimizer``.
        config: what the session watches (``SessionConfig()``).
        feature_module: the layer whose input is the penultimate representation (default:
            ``model.head`` or the last ``nn.Linear``).
        overwrite: replace an earlier run in ``run_dir``.
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, train_data: Dataset, val_data: Dataset | None = None,
        *, run_dir: str | Path | None = None, num_classes: int | None = None, classes: tuple[Any, ...] | None = None,
        guard: Guard | GuardConfig | None = None, config: SessionConfig | None = None,
        feature_module: nn.Module | None = None, overwrite: bool = False,
    ) -> None:
        self.model = model
        n_train = len(train_data)  # type: ignore[arg-type]
        n_val = 0 if val_data is None else len(val_data)  # type: ignore[arg-type]
        self.train_data = WithIndex(train_data)
        self.val_data = None if val_data is None else WithIndex(val_data, offset=n_train)
        num_classes = num_classes or (len(classes) if classes is not None else _logit_width(model))
        # Under DDP (torchrun) only rank 0 writes; every rank builds the same Guard.
        run = None if run_dir is None or rank() != 0 else RunDir.create(run_dir, overwrite=overwrite)
        if isinstance(guard, Guard):
            if guard.optimizer is not optimizer:
                raise ConfigError("Watch got a Guard over another optimizer; pass the Guard's optimizer")
            self.guard = guard
        else:
            self.guard = Guard(model, optimizer, config=guard or GuardConfig(),
                               actions=None if run is None else ActionLog(run.actions))
        self.session = TrainingSession(
            model, num_samples=n_train + n_val, num_classes=num_classes, optimizer=optimizer, run_dir=run,
            config=config, guard=self.guard, classes=classes, feature_module=feature_module,
        )
        self._handle = model.register_forward_pre_hook(self._before_forward)

    def _before_forward(self, module: nn.Module, inputs: Any) -> None:
        if module.training and torch.is_grad_enabled():
            self.session.begin_batch()

    def backward(self, loss: Tensor, *, index: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Record the batch's samples, then ``guard.backward`` (instead of ``loss.backward()``)."""
        self.session.after_forward(loss, logits)
        self.session.record_train(index, logits, labels, loss)
        self.guard.backward(loss, batch_size=len(labels))
        self.session.after_backward()

    def step(self) -> bool:
        """``guard.step()`` (instead of ``optimizer.step()``; it also zeroes the gradients).

        Returns:
            True when the accumulation window closed (the optimizer stepped or skipped a spike).
        """
        closed = self.guard.step()
        self.session.end_batch(window_closed=closed)
        return closed

    def record_val(self, index: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Record a validation batch (model in eval mode)."""
        self.session.record_val(index, logits, labels)

    def end_epoch(self, *, val_loss: float | None = None) -> bool:
        """Close the epoch (a short last accumulation window still steps); True = stop advised.

        ``val_loss`` defaults to the mean cross-entropy of the batches given to :meth:`record_val`.
        """
        self.guard.step(force=True)
        return self.session.end_epoch(val_loss=val_loss)

    def finish(self, second_pass: SecondPass | None = None) -> SessionResult | None:
        """Run the checks and write ``sample_issues.csv``, ``findings.json``, ``report.html``.

        Under DDP call it on every rank: the evidence is gathered on rank 0, which returns the
        result; the other ranks return None.

        Args:
            second_pass: when you can afford one more training: retrain a fresh model
                (``SecondPass(model=...)``) on the samples this run trusts before concluding
                (``integrations.second_pass``; inputs stacked from the datasets by default).
        """
        self._handle.remove()
        if second_pass is not None and second_pass.inputs is None and self.session.rank == 0:
            datasets = [self.train_data] + ([] if self.val_data is None else [self.val_data])
            second_pass = dataclasses.replace(second_pass, inputs=stack_inputs(datasets, self.session.num_samples))
        return self.session.finish(second_pass=second_pass if self.session.rank == 0 else None)

    def state_dict(self) -> dict[str, Any]:
        """Guard and session state, to save beside your model and optimizer checkpoints."""
        return {"guard": self.guard.state_dict(), "session": self.session.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.guard.load_state_dict(state["guard"])
        self.session.load_state_dict(state["session"])


def _logit_width(model: nn.Module) -> int:
    found = penultimate_module(model)
    width = getattr(found[1], "out_features", None) if found is not None else None
    if not width:
        raise ConfigError("cannot tell the number of classes from the model (no final nn.Linear); pass num_classes=")
    return int(width)
