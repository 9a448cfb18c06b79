"""The diagnosis inside a Hugging Face ``Trainer``: a ``TrainerCallback`` and an index collator.

::

    train = WithIndex(train_set)                        # dict items get "sample_index"
    val = WithIndex(val_set, offset=len(train_set))
    args = TrainingArguments(..., eval_strategy="epoch", remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      data_collator=DataCollatorWithPadding(tokenizer))
    callback = watch_trainer(trainer, "runs/bert")       # collator -> IndexCollator, sizes
    trainer.train()                                      # findings, sample_issues.csv, report.html

How the samples are seen: the collator keeps each batch's ``sample_index``; a forward
pre-hook on the model takes it out of the model's keyword arguments (the model never sees
it) and a forward hook reads ``labels`` and the output's ``logits``: training forwards
(train mode, gradients on) are training records, the Trainer's evaluation forwards are
validation records. ``remove_unused_columns=False`` is needed because the Trainer would
otherwise drop ``sample_index`` (it is not an argument of the model's ``forward``).

What the Trainer allows: it calls ``backward`` and the optimizer itself, so the Guard's
gradient chain (spike skip, outlier z-score clip) runs in ``on_pre_optimizer_step``, after the
Trainer's own ``max_grad_norm`` clip (set ``max_grad_norm=0`` to leave clipping to the
chain); a skipped spike drops every gradient (``param.grad = None``). With
``full_guard=True`` the whole Guard steps the optimizer there (``Guard.step_external``:
trust region, snapshot and rollback) and drops the gradients, so the Trainer's own
``optimizer.step()`` that follows changes nothing; the Trainer's scheduler still steps.
AMP and accumulation stay the Trainer's. Checkpoints: at each save the callback writes its
state (recorder, monitors, window, chain or Guard) as ``trainground_state.pt`` into the
Trainer's ``checkpoint-<step>`` folder, and ``train(resume_from_checkpoint=...)`` reads it
back: the records, the window and the run directory continue (without the file, a
resumed run starts a new diagnosis). Epochs end at the evaluation that follows them with ``eval_strategy="epoch"``
(the validation loss marks the early-learning window), at ``on_epoch_end`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainground.engine import RunDir
from trainground.errors import ConfigError
from trainground.gradients import GuardConfig
from trainground.integrations.extras import require
from trainground.integrations.framework_step import DEFAULT_GUARD, FrameworkGradients, FrameworkGuard
from trainground.integrations.session import SessionConfig, SessionResult, TrainingSession

# The callback's state inside each of the Trainer's checkpoint folders.
STATE_FILE = "trainground_state.pt"

_transformers = require("transformers", package="transformers", extra="hf", what="the transformers callback")


class IndexCollator:
    """Collates dict features with ``base`` and carries their ``sample_index`` as a tensor."""

    def __init__(self, base: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> None:
        self.base = base or _transformers.default_data_collator

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features or "sample_index" not in features[0]:
            raise ConfigError("IndexCollator: the items have no 'sample_index'; wrap the datasets in "
                              "trainground.data.WithIndex and pass TrainingArguments(remove_unused_columns=False)")
        index = torch.tensor([f["sample_index"] for f in features], dtype=torch.long)
        batch = dict(self.base([{k: v for k, v in f.items() if k != "sample_index"} for f in features]))
        batch["sample_index"] = index
        return batch


class TraingroundTrainerCallback(_transformers.TrainerCallback):  # type: ignore[misc]
    """Monitors, per-sample records, checks and report for a transformers ``Trainer``.

    Args:
        run_dir: where to write the run; None keeps everything in memory (``.result``).
        num_samples: training + evaluation samples (:func:`watch_trainer` sets it from the
            Trainer's datasets; default: the training set's length alone).
        num_classes: width of the logits (default: ``model.config.num_labels``).
        classes: class names in id order (default: ``model.config.id2label``).
        config: what the session watches.
        guard: the gradient chain's options; None turns the chain off (trust region always off).
        stop_early: stop training once the validation loss has not improved for
            ``config.patience`` evaluations.
        overwrite: replace an earlier run in ``run_dir``.
        full_guard: step through the whole Guard (trust region, rollback) instead of the chain.
    """

    def __init__(
        self, run_dir: str | Path | None = None, *, num_samples: int | None = None, num_classes: int | None = None,
        classes: tuple[Any, ...] | None = None, config: SessionConfig | None = None,
        guard: GuardConfig | None = DEFAULT_GUARD, stop_early: bool = False, overwrite: bool = False,
        full_guard: bool = False,
    ) -> None:
        self.run_dir, self.num_samples, self.num_classes, self.classes = run_dir, num_samples, num_classes, classes
        self.config = config or SessionConfig()
        self.gradients: FrameworkGradients | FrameworkGuard | None = None if guard is None else (
            FrameworkGuard(guard) if full_guard else FrameworkGradients(guard))
        self._model: Any = None
        self.stop_early, self.overwrite = stop_early, overwrite
        self.session: TrainingSession | None = None
        self.result: SessionResult | None = None
        self._index: Tensor | None = None
        self._handles: list[Any] = []

    # ---- setup ----------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       train_dataloader: Any = None, eval_dataloader: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        n = self.num_samples or _size(train_dataloader)  # the Trainer has no eval loader yet: see watch_trainer
        width = self.num_classes or int(model.config.num_labels)
        classes = self.classes
        if classes is None and getattr(model.config, "id2label", None):
            classes = tuple(model.config.id2label[i] for i in range(width))
        saved = _state_file(args, state)
        resumed = None if saved is None else torch.load(saved, map_location="cpu", weights_only=False)
        run = None if self.run_dir is None else (
            RunDir(self.run_dir) if resumed is not None else RunDir.create(self.run_dir, overwrite=self.overwrite))
        self.session = TrainingSession(model, num_samples=n, num_classes=width, optimizer=optimizer, run_dir=run,
                                       config=self.config, classes=classes)
        self._model = model
        if resumed is not None:
            self.session.load_state_dict(resumed["session"])
            if self.gradients is not None and resumed.get("gradients") is not None:
                self.gradients.load_state_dict(resumed["gradients"])
        self._handles = [model.register_forward_pre_hook(self._take_index, with_kwargs=True),
                         model.register_forward_hook(self._record, with_kwargs=True)]

    def _take_index(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        self._index = kwargs.pop("sample_index", None)
        if module.training and torch.is_grad_enabled() and self.session is not None:
            self.session.begin_batch()
        return args, kwargs

    def _record(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        session, index, labels = self.session, self._index, kwargs.get("labels")
        logits = getattr(output, "logits", None)
        if session is None or labels is None or logits is None:
            return
        if index is None:
            raise ConfigError("TraingroundTrainerCallback: a batch without 'sample_index'; use "
                              "data_collator=IndexCollator(...) and TrainingArguments(remove_unused_columns=False)")
        if module.training and torch.is_grad_enabled():
            loss = getattr(output, "loss", None)
            session.after_forward(loss if loss is not None else logits.new_zeros(()), logits)
            session.record_train(index, logits, labels, loss)
        else:
            session.record_val(index, logits, labels)
        self._index = None

    # ---- steps ------------------------------------------------------------------------------
    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.session is not None:  # a micro-batch of an accumulation window
            self.session.after_backward()
            self.session.end_batch(window_closed=False)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              **kwargs: Any) -> None:
        if self.session is None:
            return
        self.session.after_backward()
        loss = self.session.state.loss
        if isinstance(self.gradients, FrameworkGuard) and optimizer is not None:
            self.gradients.apply(self._model, getattr(optimizer, "optimizer", optimizer), loss)
        elif self.gradients is not None and optimizer is not None:
            self.gradients.apply(optimizer, loss, self._model)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.end_batch(window_closed=True)

    # ---- epochs and the end -----------------------------------------------------------------
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        strategy = getattr(args, "eval_strategy", "no")
        if self.session is not None and getattr(strategy, "value", strategy) != "epoch":
            self._end_epoch(control)  # with evaluations per epoch, on_evaluate ends the epoch

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.session is not None and self.result is None:
            self._end_epoch(control)

    def _end_epoch(self, control: Any) -> None:
        assert self.session is not None
        metrics = None if self.gradients is None else {"skipped_steps": float(self.gradients.skipped)}
        if self.session.end_epoch(metrics=metrics) and self.stop_early:
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The Trainer wrote ``checkpoint-<step>``: put the diagnosis's state beside it."""
        if self.session is None:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():  # a save elsewhere (hyperparameter search): nothing to resume from
            return
        payload = {"session": self.session.state_dict(),
                   "gradients": None if self.gradients is None else self.gradients.state_dict()}
        tmp = folder / f".{STATE_FILE}.tmp"
        torch.save(payload, tmp)
        tmp.replace(folder / STATE_FILE)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.session is not None and self.result is None:
            self.result = self.session.finish()


def watch_trainer(trainer: Any, run_dir: str | Path | None = None, **options: Any) -> TraingroundTrainerCallback:
    """Add a :class:`TraingroundTrainerCallback` to ``trainer`` sized for its training and eval datasets.

    Also wraps the Trainer's collator in :class:`IndexCollator` when it is not one already,
    and refuses ``remove_unused_columns=True`` (the Trainer would drop ``sample_index``).

    Args:
        trainer: a ``transformers.Trainer`` whose datasets are wrapped in ``WithIndex``.
        run_dir: where to write the run.
        options: the callback's other keyword arguments.
    """
    if trainer.args.remove_unused_columns:
        raise ConfigError("watch_trainer: set TrainingArguments(remove_unused_columns=False), otherwise the "
                          "Trainer drops 'sample_index' before the model sees the batch")
    if not isinstance(trainer.data_collator, IndexCollator):
        trainer.data_collator = IndexCollator(trainer.data_collator)
    n = len(trainer.train_dataset) + (0 if trainer.eval_dataset is None else len(trainer.eval_dataset))
    callback = TraingroundTrainerCallback(run_dir, num_samples=n, **options)
    trainer.add_callback(callback)
    return callback


def _state_file(args: Any, state: Any) -> Path | None:
    """The state a resumed ``train(resume_from_checkpoint=...)`` continues from, if any: the
    Trainer has loaded ``global_step`` from the checkpoint before ``on_train_begin``."""
    if not state.global_step:
        return None
    path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
    return path if path.is_file() else None


def _size(loader: Any) -> int:
    dataset = getattr(loader, "dataset", None)
    return 0 if dataset is None else len(dataset)
