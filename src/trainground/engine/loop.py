"""``fit``: a seeded, resumable training loop that any callback can watch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from trainground.data.tasks import tasks_of
from trainground.engine import schedule
from trainground.engine.callbacks import Callback, CallbackList
from trainground.engine.config import FitConfig
from trainground.engine.events import Event
from trainground.engine.fit_setup import (
    fingerprint,
    input_index,
    make_optimizer,
    model_info,
    resolve_device,
    split_data,
)
from trainground.engine.metrics import MetricsWriter, ScalarSink
from trainground.engine.model_file import save_model
from trainground.engine.multitarget import MultiTarget, default_task_loss, shared_parameters
from trainground.engine.rng import get_rng_state, set_rng_state
from trainground.engine.run_checkpoint import Checkpointer, open_run, resume_checkpoint
from trainground.engine.rundir import RunDir
from trainground.engine.single_target import SingleTarget
from trainground.engine.state import TrainState
from trainground.errors import ConfigError
from trainground.gradients import (
    ActionLog,
    Guard,
    GuardConfig,
    TaskGradientConfig,
    TaskGradients,
)

__all__ = ["FitResult", "fit", "make_optimizer", "resolve_device"]

# Changing these mid-run changes the trajectory, so a resume must use the original values.
_RESUME_MUST_MATCH = ("batch_size", "lr", "optimizer", "momentum", "weight_decay", "val_fraction", "seed")


@dataclass
class FitResult:
    """What ``fit`` returns: the trained model and what happened."""

    model: nn.Module
    history: list[dict[str, float]]
    steps: int
    # Input indices (the dataset's ``index``) of the training and validation splits; for a
    # dataset without an ``index`` attribute, positions in ``data`` (reading every item to
    # learn its index would load the whole dataset).
    train_index: np.ndarray = field(repr=False)
    val_index: np.ndarray = field(repr=False)
    run_dir: RunDir | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    config: FitConfig | None = None,
    val_data: Dataset | None = None,
    loss_fn: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: RunDir | str | Path | None = None,
    resume: bool = False,
    guard: Guard | GuardConfig | None = None,
    tasks: TaskGradients | TaskGradientConfig | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` (items ``(index, x, y)``) and return what happened.

    Batches come from a permutation drawn from a generator seeded with ``config.seed``,
    so the same seed gives the same batches. With ``run_dir``, per-step metrics go to
    ``metrics.jsonl``, checkpoints to ``checkpoints/`` and the final weights to
    ``model.safetensors``; ``resume=True`` continues from the newest checkpoint there and
    ends with the same weights as an uninterrupted run.

    Args:
        model: any ``nn.Module`` mapping a batch of ``x`` to class logits.
        data: training data; an ``IndexedDataset`` or any map-style dataset of ``(index, x, y)`` or
            ``(x, y)`` items (e.g. ``TensorDataset(X, y)``: the index is then the position).
        config: loop options (``FitConfig()`` when omitted).
        val_data: validation data; when omitted, ``config.val_fraction`` of ``data`` is held out.
        loss_fn: batch-mean loss ``loss_fn(logits, y)``; cross-entropy when omitted. A loss with
            ``indexed_loss(logits, y, index)`` (the ``trainground.losses`` modules) is called
            through it in training, so per-sample weights keyed by input index apply.
        optimizer: built from ``config`` when omitted.
        callbacks: watchers of the loop's events; ``ScalarSink`` callbacks (e.g. the TensorBoard and
            MLflow loggers of ``trainground.integrations``) also get ``metrics.jsonl``'s records.
        run_dir: where the run is written; None keeps everything in memory.
        resume: continue the run in ``run_dir`` from its newest checkpoint.
        guard: the step's protection (AMP, accumulation, clipping, spike skip/rollback): a
            ``GuardConfig``, a ready ``Guard`` over ``model``/``optimizer``, or None for
            ``Guard`` with ``GuardConfig()`` defaults. Its actions go to ``actions.jsonl``.
        tasks: multi-target data only: per-task gradients (a ``TaskGradientConfig`` or a ready
            ``TaskGradients``) handed to the Guard: per-task norms and cosines in
            ``metrics.jsonl``, per-task clipping, PCGrad. None: one backward of the summed loss.

    Multi-target data (a dataset with ``.tasks``, items ``(index, x, {task: target})``, a model
    returning ``{task: output}``): ``loss_fn`` is a ``MultiTaskLoss`` (each task's default loss,
    static weights, when omitted; its parameters, e.g. uncertainty weights, are optimised too);
    the history and ``metrics.jsonl`` get ``train_loss/<task>``, ``val_<metric>/<task>``
    (accuracy for class tasks, MAE for regression, see ``engine.task_kinds``) and, for class
    tasks, ``val_accuracy`` as their mean.
    """
    config = config or FitConfig()
    if config.epochs < 1 or config.batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {config.epochs} and {config.batch_size}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    train, val = split_data(data, val_data, config)
    if len(train) == 0:
        raise ConfigError("the training split is empty")
    model.to(device)
    if isinstance(guard, Guard):
        if optimizer is not None and optimizer is not guard.optimizer:
            raise ConfigError("fit got a Guard and a different optimizer; pass the Guard's optimizer or neither")
        optimizer = guard.optimizer
    task_specs = tasks_of(data)
    mode: SingleTarget | MultiTarget
    if task_specs is None:
        loss_fn = loss_fn or nn.CrossEntropyLoss()
        if tasks is not None:
            raise ConfigError("fit: tasks= (per-task gradients) needs a multi-target dataset (one with .tasks)")
        mode = SingleTarget(loss_fn)
        if optimizer is None and schedule.applies(config, data):
            config = schedule.choose_schedule(model, train, config, loss_fn, make_optimizer, device)
    else:
        loss_fn = (loss_fn or default_task_loss(task_specs)).to(device)
        mode = MultiTarget(task_specs, loss_fn)
        if optimizer is None:
            # Learned task weights (uncertainty weighting) are optimised with the model.
            optimizer = make_optimizer(config, list(model.parameters()) + list(loss_fn.parameters()))
    optimizer = optimizer or make_optimizer(config, model.parameters())

    # Files appended to rather than written atomically are listed in the manifest here.
    run = open_run(run_dir, resume=resume, appended=("metrics.jsonl", "actions.jsonl", "checkpoints"))
    all_callbacks = list(callbacks)
    # One writer buffers the per-step scalars for the file and for every sink (TensorBoard, MLflow).
    sinks = [cb for cb in all_callbacks if isinstance(cb, ScalarSink)]
    if run is not None or sinks:
        all_callbacks.insert(0, MetricsWriter(None if run is None else run.metrics, flush_every=config.log_every,
                                              sinks=sinks))
    hooks = CallbackList(all_callbacks)
    if isinstance(tasks, TaskGradientConfig):
        tasks = tasks.build(list(model.parameters()) + list(loss_fn.parameters()), shared=shared_parameters(model))
    if not isinstance(guard, Guard):
        guard = Guard(model, optimizer, config=guard or GuardConfig(), tasks=tasks,
                      actions=None if run is None else ActionLog(run.actions))
    else:
        if tasks is not None:
            if guard.tasks is not None and guard.tasks is not tasks:
                raise ConfigError("fit got a Guard with a tasks handler and another tasks=; pass one of them")
            guard.tasks = tasks
        if run is not None and guard.action_log is None:
            guard.action_log = ActionLog(run.actions)

    steps_per_epoch = -(-len(train) // config.batch_size)
    state = TrainState(
        model=model, optimizer=optimizer, config=config, num_epochs=config.epochs,
        steps_per_epoch=steps_per_epoch, run_dir=run, guard=guard,
    )
    generator = torch.Generator().manual_seed(config.seed)
    epoch_start_rng = generator.get_state()
    data_id = fingerprint(train)
    # Running sums of the current epoch, kept on the device: no host sync per step.
    totals = mode.new_totals(device)

    if resume:
        ckpt = resume_checkpoint(run, config=asdict(config), must_match=_RESUME_MUST_MATCH, fingerprint=data_id)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        hooks.load_state_dict(ckpt["callbacks"])
        set_rng_state(ckpt["rng"])
        epoch_start_rng = ckpt["batch_rng"]
        totals = ckpt["totals"].to(device)
        state.step, state.epoch, state.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        state.history = list(ckpt["history"])
        mode.load_checkpoint_state(ckpt, guard)
        if "guard" in ckpt:
            guard.load_state_dict(ckpt["guard"])
            if guard.action_log is not None:
                guard.action_log.truncate(int(ckpt.get("actions_bytes", 0)))

    def payload() -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": get_rng_state(),
            "batch_rng": epoch_start_rng, "totals": totals.cpu(), "step": state.step, "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch, "history": state.history, "callbacks": hooks.state_dict(),
            "config": asdict(config), "data_fingerprint": data_id, "guard": guard.state_dict(),
            "actions_bytes": 0 if guard.action_log is None else guard.action_log.size(),
            **mode.checkpoint_state(guard),
        }

    checkpoints = Checkpointer(run, payload=payload, before_save=lambda: hooks.fire(Event.CHECKPOINT, state),
                               every_steps=config.checkpoint_every, every_seconds=config.checkpoint_seconds,
                               keep=config.keep_checkpoints)
    val_batch = max(config.batch_size, 256)

    def observe_val(batch: tuple[Tensor, Any, Any], outputs: Any) -> None:
        state.batch, state.logits = batch, outputs
        hooks.fire(Event.VAL_FORWARD, state)

    model.train()
    hooks.fire(Event.FIT_START, state)
    while state.epoch < config.epochs:
        generator.set_state(epoch_start_rng)
        order = torch.randperm(len(train), generator=generator).split(config.batch_size)
        if state.batch_in_epoch == 0:
            hooks.fire(Event.EPOCH_START, state)
        for rows in order[state.batch_in_epoch :]:
            mode.train_step(state, train.batch(rows, device), hooks, totals, guard)
            checkpoints.after_batch(state.step, last_of_epoch=state.batch_in_epoch == len(order))
        guard.step(force=True)  # a short last accumulation window still steps (weighted exactly)
        last = state.batch, state.logits  # the validation batches pass through them for VAL_FORWARD
        state.epoch_metrics = mode.end_epoch(model, totals, val, batch_size=val_batch, device=device,
                                             observe=observe_val if hooks.listens(Event.VAL_FORWARD) else None)
        state.batch, state.logits = last
        state.history.append(dict(state.epoch_metrics))
        hooks.fire(Event.EPOCH_END, state)
        state.epoch += 1
        state.batch_in_epoch = 0
        totals.zero_()
        epoch_start_rng = generator.get_state()  # the next epoch's permutation starts here
        checkpoints.after_epoch(state.step, final=state.epoch >= config.epochs or state.stop_requested)
        if state.stop_requested:
            break
    hooks.fire(Event.FIT_END, state)
    if run is not None:
        save_model(run.model, model, info=model_info(data))
    return FitResult(
        model=model, history=state.history, steps=state.step, train_index=input_index(train),
        val_index=input_index(val), run_dir=run,
    )
