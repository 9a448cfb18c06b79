"""``fit``: a seeded, resumable training loop that any callback can watch."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from trainground.data.split import stratified_split
from trainground.data.tasks import tasks_of
from trainground.engine import schedule
from trainground.engine.batches import BatchSource
from trainground.engine.callbacks import Callback, CallbackList
from trainground.engine.checkpoint import (
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
)
from trainground.engine.config import FitConfig
from trainground.engine.evaluate import evaluate
from trainground.engine.events import Event
from trainground.engine.metrics import MetricsWriter, ScalarSink
from trainground.engine.model_file import save_model
from trainground.engine.multitarget import MultiTarget, default_task_loss, shared_parameters
from trainground.engine.multitarget_step import multi_train_step
from trainground.engine.rng import get_rng_state, set_rng_state
from trainground.engine.rundir import RunDir
from trainground.engine.state import TrainState
from trainground.errors import ConfigError, RunDirError
from trainground.gradients import ActionLog, Guard, GuardConfig, TaskGradientConfig, TaskGradients
from trainground.losses.sample_weights import loss_for_batch

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


def make_optimizer(config: FitConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}; known: adam, adamw, sgd")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA device is available; use device: auto or cpu")
    return torch.device(name)


def _fingerprint(source: BatchSource) -> str:
    # Labels and indices identify the data cheaply; a resume on other data must fail loudly.
    digest = hashlib.sha1(str(len(source)).encode())
    labels = source.labels()
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).tobytes())
    index = getattr(source.dataset, "index", None)
    if index is not None:
        digest.update(np.ascontiguousarray(np.asarray(index)).tobytes())
    targets = getattr(source.dataset, "targets", None)
    if isinstance(targets, dict):  # a multi-target dataset: every task's targets identify it
        for name, values in targets.items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(np.asarray(values)).tobytes())
    return digest.hexdigest()


def _split(data: Dataset, val_data: Dataset | None, config: FitConfig) -> tuple[BatchSource, BatchSource | None]:
    if val_data is not None:
        return BatchSource(data), BatchSource(val_data)
    if config.val_fraction <= 0:
        return BatchSource(data), None
    labels = BatchSource(data).labels()
    if labels is None:  # a plain Dataset: no labels to stratify on without reading every item
        rng = np.random.default_rng(config.seed)
        perm = rng.permutation(len(data))  # type: ignore[arg-type]
        n_val = int(round(config.val_fraction * len(perm)))
        train_pos, val_pos = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        train_pos, val_pos = stratified_split(labels, fraction=config.val_fraction, seed=config.seed)
    return BatchSource(data, train_pos), BatchSource(data, val_pos)


def _input_index(source: BatchSource | None) -> np.ndarray:
    if source is None:
        return np.empty(0, dtype=np.int64)
    index = getattr(source.dataset, "index", None)
    positions = np.arange(len(source.dataset)) if source.positions is None else source.positions.numpy()  # type: ignore[arg-type]
    return positions if index is None else np.asarray(index)[positions]


def _model_info(data: Dataset) -> dict[str, Any]:
    info: dict[str, Any] = {}
    encoder = getattr(data, "encoder", None)
    if encoder is not None:
        info["classes"] = encoder.to_json()
    schema = getattr(data, "schema", None)
    if schema is not None and hasattr(schema, "to_json"):
        info["data_schema"] = schema.to_json()
    tasks = tasks_of(data)
    if tasks is not None:
        info["tasks"] = [t.to_json() for t in tasks]
    return info


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
    train, val = _split(data, val_data, config)
    if len(train) == 0:
        raise ConfigError("the training split is empty")
    model.to(device)
    if isinstance(guard, Guard):
        if optimizer is not None and optimizer is not guard.optimizer:
            raise ConfigError("fit got a Guard and a different optimizer; pass the Guard's optimizer or neither")
        optimizer = guard.optimizer
    task_specs = tasks_of(data)
    multi: MultiTarget | None = None
    if task_specs is None:
        loss_fn = loss_fn or nn.CrossEntropyLoss()
        if tasks is not None:
            raise ConfigError("fit: tasks= (per-task gradients) needs a multi-target dataset (one with .tasks)")
    else:
        loss_fn = (loss_fn or default_task_loss(task_specs)).to(device)
        multi = MultiTarget(task_specs, loss_fn)
    if optimizer is None and multi is None and schedule.applies(config, data):
        config = schedule.choose_schedule(model, train, config, loss_fn, make_optimizer, device)
    if optimizer is None and multi is not None:
        # Learned task weights (uncertainty weighting) are optimised with the model.
        optimizer = make_optimizer(config, list(model.parameters()) + list(loss_fn.parameters()))
    optimizer = optimizer or make_optimizer(config, model.parameters())

    run = None if run_dir is None else (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir))
    all_callbacks = list(callbacks)
    if run is not None:
        if not resume and (run.metrics.exists() or list_checkpoints(run.checkpoints)):
            # Appending a second run to the first one's metrics and checkpoints would corrupt both.
            raise RunDirError(
                f"{run.path}: already holds a training run; pass resume=True to continue it, "
                "or choose another run_dir"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        # Files appended to rather than written atomically are listed in the manifest here.
        run.record("metrics.jsonl", "actions.jsonl", "checkpoints")
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
    fingerprint = _fingerprint(train)
    # Running sums of the current epoch, kept on the device: no host sync per step.
    totals = torch.zeros(3, device=device, dtype=torch.float64) if multi is None else multi.new_totals(device)

    if resume:
        if run is None:
            raise ConfigError("resume=True needs a run_dir")
        ckpt = load_latest_checkpoint(run.checkpoints)
        if ckpt is None:
            raise RunDirError(f"{run.checkpoints}: no checkpoint to resume from")
        _check_resumable(ckpt, config, fingerprint, run)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        hooks.load_state_dict(ckpt["callbacks"])
        set_rng_state(ckpt["rng"])
        epoch_start_rng = ckpt["batch_rng"]
        totals = ckpt["totals"].to(device)
        state.step, state.epoch, state.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        state.history = list(ckpt["history"])
        if multi is not None:
            loss_fn.load_state_dict(ckpt["loss"])
            if guard.tasks is not None and "task_gradients" in ckpt:
                guard.tasks.load_state_dict(ckpt["task_gradients"])
        if "guard" in ckpt:
            guard.load_state_dict(ckpt["guard"])
            if guard.action_log is not None:
                guard.action_log.truncate(int(ckpt.get("actions_bytes", 0)))

    last_checkpoint = time.monotonic()

    def checkpoint() -> None:
        nonlocal last_checkpoint
        if run is None:
            return
        last_checkpoint = time.monotonic()
        hooks.fire(Event.CHECKPOINT, state)
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": get_rng_state(),
            "batch_rng": epoch_start_rng, "totals": totals.cpu(), "step": state.step, "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch, "history": state.history, "callbacks": hooks.state_dict(),
            "config": asdict(config), "data_fingerprint": fingerprint, "guard": guard.state_dict(),
            "actions_bytes": 0 if guard.action_log is None else guard.action_log.size(),
        }
        if multi is not None:
            payload["loss"] = loss_fn.state_dict()  # learned / epoch-wise task weights
            if guard.tasks is not None and hasattr(guard.tasks, "state_dict"):
                payload["task_gradients"] = guard.tasks.state_dict()
        save_checkpoint(run.checkpoints, state.step, payload, keep=config.keep_checkpoints)

    model.train()
    hooks.fire(Event.FIT_START, state)
    while state.epoch < config.epochs:
        generator.set_state(epoch_start_rng)
        order = torch.randperm(len(train), generator=generator).split(config.batch_size)
        if state.batch_in_epoch == 0:
            hooks.fire(Event.EPOCH_START, state)
        for rows in order[state.batch_in_epoch :]:
            if multi is None:
                _train_step(state, train.batch(rows, device), loss_fn, hooks, totals, guard)
            else:
                multi_train_step(state, train.batch(rows, device), multi, hooks, totals, guard)
            last_of_epoch = state.batch_in_epoch == len(order)
            if config.checkpoint_every and state.step % config.checkpoint_every == 0 and not last_of_epoch:
                checkpoint()  # the epoch-end checkpoint follows anyway for the last batch
        guard.step(force=True)  # a short last accumulation window still steps (weighted exactly)
        if multi is None:
            loss_sum, correct, seen = totals.tolist()
            state.epoch_metrics = {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}
            if val is not None and len(val):
                scores = evaluate(model, val, loss_fn, batch_size=max(config.batch_size, 256), device=device)
                state.epoch_metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        else:
            state.epoch_metrics = multi.metrics(totals.tolist(), "train")
            if val is not None and len(val):
                state.epoch_metrics.update(multi.evaluate(model, val, batch_size=max(config.batch_size, 256),
                                                          device=device))
            state.epoch_metrics.update(multi.task_weights())
            end_epoch = getattr(loss_fn, "end_epoch", None)
            if end_epoch is not None:
                end_epoch()  # DWA: the next epoch's weights from this epoch's task losses
        state.history.append(dict(state.epoch_metrics))
        hooks.fire(Event.EPOCH_END, state)
        state.epoch += 1
        state.batch_in_epoch = 0
        totals.zero_()
        epoch_start_rng = generator.get_state()  # the next epoch's permutation starts here
        final = state.epoch >= config.epochs or state.stop_requested
        if final or time.monotonic() - last_checkpoint >= config.checkpoint_seconds:
            checkpoint()
        if state.stop_requested:
            break
    hooks.fire(Event.FIT_END, state)
    if run is not None:
        save_model(run.model, model, info=_model_info(data))
    return FitResult(
        model=model, history=state.history, steps=state.step, train_index=_input_index(train),
        val_index=_input_index(val), run_dir=run,
    )


def _train_step(
    state: TrainState, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], loss_fn: nn.Module,
    hooks: CallbackList, totals: torch.Tensor, guard: Guard,
) -> None:
    """One batch through the Guard; every line below is an event or the maths between two.

    The Guard accumulates the batch's gradient weighted by its size and steps the optimizer
    when its window closes (every batch with the default K=1), after unscaling, the transform
    chain and the spike checks.
    """
    state.batch = batch
    hooks.fire(Event.BATCH_START, state)
    _, x, y = batch
    with guard.autocast():
        state.logits = state.model(x)
        state.loss = _batch_loss(loss_fn, state.logits, batch)
    hooks.fire(Event.AFTER_FORWARD, state)
    guard.backward(state.loss, batch_size=len(y))
    hooks.fire(Event.AFTER_BACKWARD, state)
    state.window_closed = guard.step()
    with torch.no_grad():
        n = len(y)
        totals[0] += state.loss.detach().double() * n
        totals[1] += (state.logits.argmax(dim=1) == y).sum()
        totals[2] += n
    state.step += 1
    state.batch_in_epoch += 1
    hooks.fire(Event.BATCH_END, state)


def _batch_loss(loss_fn: nn.Module, logits: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``loss_fn(logits, y)``; a loss with ``indexed_loss`` (per-sample weights keyed by the
    input index, e.g. ``trainground.losses.WeightedCrossEntropy(sample_weights=...)``) also gets
    the batch's index."""
    index, _, y = batch
    return loss_for_batch(loss_fn, logits, y, index)


def _check_resumable(ckpt: dict[str, Any], config: FitConfig, fingerprint: str, run: RunDir) -> None:
    saved = ckpt["config"]
    for key in _RESUME_MUST_MATCH:
        if saved.get(key) != getattr(config, key):
            raise RunDirError(
                f"{run.path}: cannot resume: the run was started with {key}={saved.get(key)!r}, "
                f"now {key}={getattr(config, key)!r}"
            )
    if ckpt["data_fingerprint"] != fingerprint:
        raise RunDirError(f"{run.path}: cannot resume: the training data differ from the data the run started on")
