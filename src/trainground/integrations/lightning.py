"""``TraingroundCallback``: the diagnosis and the gradient chain inside a PyTorch Lightning run.

::

    class Classifier(pl.LightningModule):
        def training_step(self, batch, batch_idx):
            index, x, y = batch                      # datasets wrapped in WithIndex
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            return {"loss": loss, "logits": logits}  # the callback records the logits
        def validation_step(self, batch, batch_idx):
            index, x, y = batch
            logits = self.net(x)
            return {"loss": F.cross_entropy(logits, y), "logits": logits}

    trainer = pl.Trainer(max_epochs=20, callbacks=[TraingroundCallback("runs/mine")])

What Lightning allows and what it does not: Lightning calls ``backward`` and the
optimizer itself, so the callback runs the Guard's gradient chain (spike skip, outlier z-score clip)
in ``on_before_optimizer_step``, after Lightning's AMP unscaling: a clipped step is
clipped, a skipped spike drops every gradient (``param.grad = None``; SGD, Adam and AdamW
then leave the weights and their state untouched). The secant trust region and the
rollback to a snapshot need the Guard's own optimizer step: with ``full_guard=True`` the
callback steps the optimizer itself through ``Guard.step_external`` in that hook and drops
the gradients, so Lightning's own ``optimizer.step()`` that follows changes nothing (torch
optimizers skip parameters without a gradient). What it cannot do: the Guard's adaptive
accumulation and its AMP loss scale (Lightning's own apply); optimizers that step without
gradients (LBFGS's closure, custom ones) would be stepped twice; manual optimisation
(``automatic_optimization = False``) and several optimizers are not guarded;
AMP and gradient accumulation stay Lightning's (``precision=``,
``accumulate_grad_batches=``); the monitors read the gradients in ``on_before_optimizer_step``
too, so they see them unscaled and, with accumulation, complete. Checkpoints: the callback's state (recorder, monitors,
early-learning window, chain) rides in Lightning's checkpoint, so ``fit(ckpt_path=...)``
resumes the diagnosis with the training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainground.engine import RunDir
from trainground.errors import ConfigError
from trainground.gradients import GuardConfig
from trainground.integrations.framework_step import DEFAULT_GUARD, FrameworkGradients, FrameworkGuard
from trainground.integrations.second_pass import SecondPass, stack_inputs
from trainground.integrations.session import SessionConfig, SessionResult, TrainingSession


def _lightning() -> Any:
    try:
        import pytorch_lightning as pl
    except ImportError:
        try:
            import lightning.pytorch as pl  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError("the Lightning callback needs PyTorch Lightning: pip install 'trainground[lightning]'") \
                from None
    return pl


pl = _lightning()


def split_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """``(index, labels)`` of a batch ``(index, x, y)`` or a dict with ``sample_index`` and ``labels``."""
    if isinstance(batch, dict) and "sample_index" in batch:
        return batch["sample_index"], batch["labels"]
    if isinstance(batch, tuple | list) and len(batch) == 3:
        return batch[0], batch[2]
    raise ConfigError("TraingroundCallback needs batches (index, x, y): wrap your datasets in "
                      "trainground.data.WithIndex (and the validation set with offset=len(train_set))")


def _logits(outputs: Any, hook: str) -> Tensor:
    if isinstance(outputs, dict) and isinstance(outputs.get("logits"), Tensor):
        return outputs["logits"]
    raise ConfigError(f"TraingroundCallback: {hook} must return a dict with 'logits' (and 'loss'), "
                      f"got {type(outputs).__name__}")


class TraingroundCallback(pl.Callback):  # type: ignore[misc,name-defined]
    """Monitors, per-sample records, checks and report for a Lightning ``Trainer``.

    Args:
        run_dir: where to write the run; None keeps everything in memory (``.result``).
        num_samples: training + validation samples (default: the lengths of the
            Trainer's training and validation datasets).
        num_classes: width of the logits (default: ``out_features`` of the last ``nn.Linear``).
        classes: class names in id order.
        config: what the session watches.
        guard: the gradient chain's options (spike skip, clips); None turns the chain off.
            The trust region is off here unless ``full_guard`` (see the module docstring).
        full_guard: step through the whole Guard (``Guard.step_external``: exact skip, secant
            trust region, snapshot and rollback, the Guard's statistics) instead of the chain
            alone; costs a copy of the gradients and a snapshot per step.
        stop_early: end training (``trainer.should_stop``) once the validation loss has not
            improved for ``config.patience`` epochs; off by default (your Trainer decides).
        overwrite: replace an earlier run in ``run_dir`` (a resumed fit reuses its own).
        second_pass: retrain a fresh model on the samples the run trusts at ``on_fit_end``
            before concluding (``integrations.second_pass``: ``SecondPass(model=...)``, inputs
            stacked from the Trainer's training and validation datasets); None: one pass.
    """

    def __init__(
        self, run_dir: str | Path | None = None, *, num_samples: int | None = None, num_classes: int | None = None,
        classes: tuple[Any, ...] | None = None, config: SessionConfig | None = None,
        guard: GuardConfig | None = DEFAULT_GUARD, stop_early: bool = False, overwrite: bool = False,
        second_pass: SecondPass | None = None, full_guard: bool = False,
    ) -> None:
        super().__init__()
        self.second_pass = second_pass
        self.full_guard = full_guard and guard is not None
        self.run_dir, self.num_samples, self.num_classes, self.classes = run_dir, num_samples, num_classes, classes
        self.config = config or SessionConfig()
        self.gradients: FrameworkGradients | FrameworkGuard | None = None if guard is None else (
            FrameworkGuard(guard) if full_guard else FrameworkGradients(guard))
        self._batch_size: int | None = None
        self.stop_early, self.overwrite = stop_early, overwrite
        self.session: TrainingSession | None = None
        self.result: SessionResult | None = None
        self._stepped = False
        self._pending: dict[str, Any] | None = None

    # ---- setup ------------------------------------------------------------------------------
    def _ensure_session(self, trainer: Any, pl_module: Any) -> TrainingSession:
        if self.session is not None:
            return self.session
        n = self.num_samples or _dataset_size(trainer)
        width = self.num_classes or (len(self.classes) if self.classes is not None else None)
        if width is None:
            from trainground.integrations.own_loop import _logit_width

            width = _logit_width(pl_module)
        run = None
        if self.run_dir is not None and trainer.is_global_zero:
            run = RunDir(self.run_dir) if self._pending is not None else RunDir.create(self.run_dir,
                                                                                        overwrite=self.overwrite)
        self.session = TrainingSession(pl_module, num_samples=n, num_classes=width, optimizer=_optimizer(trainer),
                                       run_dir=run, config=self.config, classes=self.classes)
        if self._pending is not None:
            self.session.load_state_dict(self._pending["session"])
            if self.gradients is not None and self._pending.get("gradients") is not None:
                self.gradients.load_state_dict(self._pending["gradients"])
            self._pending = None
        return self.session

    # ---- training -----------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._ensure_session(trainer, pl_module).begin_batch()
        if self.full_guard:  # samples behind the window's gradients (Lightning may accumulate)
            self._batch_size = (self._batch_size or 0) + len(split_batch(batch)[1])
        self._stepped = False

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Tensor) -> None:
        if self.session is not None:
            self.session.after_forward(loss)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        # The gradients are read here, not in on_after_backward: Lightning's AMP unscales them
        # (and gradient accumulation completes them) just before this hook, so the monitors see
        # what the optimizer will step on, as in fit.
        if self.session is not None:
            self.session.after_backward()
        self._stepped = True
        loss = None if self.session is None else self.session.state.loss
        if isinstance(self.gradients, FrameworkGuard) and optimizer is not None:
            # Lightning hands the LightningOptimizer wrapper; the Guard steps the torch optimizer.
            self.gradients.apply(pl_module, getattr(optimizer, "optimizer", optimizer), loss, self._batch_size)
            self._batch_size = None
        elif self.gradients is not None and optimizer is not None:
            self.gradients.apply(optimizer, loss, pl_module)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        session = self._ensure_session(trainer, pl_module)
        index, labels = split_batch(batch)
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        session.record_train(index, _logits(outputs, "training_step"), labels, loss)
        session.end_batch(window_closed=self._stepped)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or self.session is None:
            return
        index, labels = split_batch(batch)
        self.session.record_val(index, _logits(outputs, "validation_step"), labels)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.session is None:
            return
        metrics = None if self.gradients is None else {"skipped_steps": float(self.gradients.skipped)}
        if self.session.end_epoch(metrics=metrics) and self.stop_early:
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.session is not None:  # every rank: under DDP finish() gathers on rank 0
            second = self.second_pass if trainer.is_global_zero else None
            if second is not None and second.inputs is None:
                datasets = [loader.dataset for loader in _loaders(trainer.train_dataloader)
                            + _loaders(trainer.val_dataloaders)]
                second = dataclasses.replace(second, inputs=stack_inputs(datasets, self.session.num_samples))
            self.result = self.session.finish(second_pass=second)

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.session is None:
            return {}
        return {"session": self.session.state_dict(),
                "gradients": None if self.gradients is None else self.gradients.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) or None


def _loaders(loaders: Any) -> list[Any]:
    if loaders is None:
        return []
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]


def _dataset_size(trainer: Any) -> int:
    n = sum(len(loader.dataset) for loader in _loaders(trainer.train_dataloader) + _loaders(trainer.val_dataloaders))
    if n == 0:
        raise ConfigError("TraingroundCallback cannot tell the number of samples; pass num_samples=")
    return n


def _optimizer(trainer: Any) -> torch.optim.Optimizer | None:
    return trainer.optimizers[0] if trainer.optimizers else None
