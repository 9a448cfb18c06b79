"""The multi-target side of ``fit``: per-task losses, running per-task sums, per-task evaluation.

A multi-target dataset declares ``.tasks`` (``data.TaskSpec``) and yields ``y = {task:
target}``; the model returns ``{task: output}``. It is one of ``fit``'s two target modes
(``engine.single_target.SingleTarget`` is the other, with the same four jobs); its step is the
single-target step with the loss replaced by a ``MultiTaskLoss`` (one loss per task, weighted by a
static, uncertainty or DWA weighting), and, when per-task gradients are configured, the
Guard's ``backward`` fed the weighted per-task losses (``TaskGradients``: per-task norms,
cosines, per-task clipping, PCGrad). Everything per task stays on the device until the
epoch ends: one ``[3 + 2T]`` running-sum tensor, like the single-target ``[3]`` one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainground.data.tasks import TaskSpec
from trainground.engine.batches import BatchSource
from trainground.engine.callbacks import CallbackList
from trainground.engine.evaluate import Observe
from trainground.engine.events import Event
from trainground.engine.state import TrainState
from trainground.engine.task_kinds import batch_task_metrics, task_kind
from trainground.errors import ConfigError, DataError
from trainground.gradients import Guard
from trainground.losses.multitask import MultiTaskLoss
from trainground.losses.task_weighting import WeightingName


def default_task_loss(tasks: Sequence[TaskSpec], *, weighting: WeightingName = "static",
                      **options: Any) -> MultiTaskLoss:
    """A :class:`MultiTaskLoss` with each task's kind's default loss (CE, MSE...)."""
    return MultiTaskLoss({t.name: task_kind(t.kind).default_loss(t) for t in tasks}, weighting=weighting, **options)


def shared_parameters(model: nn.Module) -> list[Tensor] | None:
    """The parameters the tasks share: ``model.shared_parameters()`` when the model says, else None (all)."""
    shared = getattr(model, "shared_parameters", None)
    return None if shared is None else list(shared())


class MultiTarget:
    """What ``fit`` does differently for a dataset with ``.tasks``.

    Args:
        tasks: the dataset's task declarations.
        loss_fn: a :class:`MultiTaskLoss` (or any module with ``raw_losses`` and ``weighting``).
    """

    def __init__(self, tasks: Sequence[TaskSpec], loss_fn: nn.Module) -> None:
        self.tasks = tuple(tasks)
        self.names = [t.name for t in self.tasks]
        self.kinds = [task_kind(t.kind) for t in self.tasks]  # an unknown kind fails here, before training
        if not (hasattr(loss_fn, "raw_losses") and hasattr(loss_fn, "weighting")):
            raise ConfigError(f"fit: a multi-target dataset (tasks {self.names}) needs a MultiTaskLoss, "
                              f"got {type(loss_fn).__name__}")
        if list(getattr(loss_fn, "tasks", self.names)) != self.names:
            raise ConfigError(f"fit: the loss's tasks {list(loss_fn.tasks)} differ from the data's {self.names}")
        self.loss_fn = loss_fn
        self.class_positions = [i for i, t in enumerate(self.tasks) if t.kind == "class"]

    def new_totals(self, device: torch.device) -> Tensor:
        """``[3 + 2T]``: weighted loss sum, unused, samples, then each task's raw loss sum and metric sum."""
        return torch.zeros(3 + 2 * len(self.tasks), device=device, dtype=torch.float64)

    def outputs(self, outputs: Any) -> Mapping[str, Tensor]:
        if not isinstance(outputs, Mapping):
            raise DataError(f"fit: a multi-target dataset (tasks {self.names}) needs a model returning "
                            f"{{task: output}}; it returned a {type(outputs).__name__}")
        return outputs

    def train_losses(self, outputs: Any, targets: Mapping[str, Tensor], index: Tensor
                     ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(weighted per-task losses, raw per-task losses) of a training batch (event weights apply)."""
        outputs = self.outputs(outputs)
        indexed = getattr(self.loss_fn, "indexed_raw_losses", None)
        raw = indexed(outputs, targets, index) if indexed is not None else self.loss_fn.raw_losses(outputs, targets)
        return self.loss_fn.weighting(raw), raw

    def train_step(self, state: TrainState, batch: tuple[Tensor, Any, Any], hooks: CallbackList, totals: Tensor,
                   guard: Guard) -> None:
        """Forward to ``{task: output}``, per-task losses, then the Guard.

        With a tasks handler on the Guard (``TaskGradients``) the weighted per-task losses go to
        ``guard.backward`` as a mapping (one backward per task: norms, cosines, per-task clip,
        PCGrad); without, their sum goes as one loss. ``state.loss`` is the weighted sum either
        way; ``state.step_extras`` holds each task's raw loss and gradient figures (device
        tensors, written by ``MetricsWriter`` at its next flush).
        """
        state.batch = batch
        hooks.fire(Event.BATCH_START, state)
        index, x, y = batch
        with guard.autocast():
            state.logits = self.outputs(state.model(x))
            weighted, raw = self.train_losses(state.logits, y, index)
            state.loss = torch.stack([v.float().reshape(()) for v in weighted.values()]).sum()
        hooks.fire(Event.AFTER_FORWARD, state)
        n = len(index)
        guard.backward(weighted if guard.tasks is not None else state.loss, batch_size=n)
        hooks.fire(Event.AFTER_BACKWARD, state)
        state.window_closed = guard.step()
        self.add(totals, state.loss, raw, state.logits, y, n)
        extras = {f"loss/{k}": v.detach() for k, v in raw.items()}
        if guard.tasks is not None:
            extras.update(task_gradient_extras(guard.tasks))
        state.step_extras = extras
        state.step += 1
        state.batch_in_epoch += 1
        hooks.fire(Event.BATCH_END, state)

    def end_epoch(self, model: nn.Module, totals: Tensor, val: BatchSource | None, *, batch_size: int,
                  device: torch.device, observe: Observe | None = None) -> dict[str, float]:
        """The epoch's per-task training and validation metrics and task weights; then the loss's
        own epoch end (DWA: the next epoch's weights from this epoch's task losses)."""
        metrics = self.metrics(totals.tolist(), "train")
        if val is not None and len(val):
            metrics.update(self.evaluate(model, val, batch_size=batch_size, device=device, observe=observe))
        metrics.update(self.task_weights())
        end_epoch = getattr(self.loss_fn, "end_epoch", None)
        if end_epoch is not None:
            end_epoch()
        return metrics

    def checkpoint_state(self, guard: Guard) -> dict[str, Any]:
        """The learned / epoch-wise task weights and the per-task gradient handler's state."""
        state: dict[str, Any] = {"loss": self.loss_fn.state_dict()}
        if guard.tasks is not None and hasattr(guard.tasks, "state_dict"):
            state["task_gradients"] = guard.tasks.state_dict()
        return state

    def load_checkpoint_state(self, ckpt: dict[str, Any], guard: Guard) -> None:
        self.loss_fn.load_state_dict(ckpt["loss"])
        if guard.tasks is not None and "task_gradients" in ckpt:
            guard.tasks.load_state_dict(ckpt["task_gradients"])

    @torch.no_grad()
    def add(self, totals: Tensor, total_loss: Tensor, raw: Mapping[str, Tensor], outputs: Mapping[str, Tensor],
            targets: Mapping[str, Tensor], n: int) -> None:
        t = len(self.tasks)
        totals[0] += total_loss.detach().double() * n
        totals[2] += n
        totals[3 : 3 + t] += torch.stack([raw[k].detach().double().reshape(()) for k in self.names]) * n
        totals[3 + t :] += batch_task_metrics(self.tasks, dict(outputs), dict(targets))

    def metrics(self, values: Sequence[float], prefix: str) -> dict[str, float]:
        """Epoch metrics from a totals row read to the host: ``<prefix>_loss``, ``<prefix>_loss/<task>``,
        ``<prefix>_<metric>/<task>`` and ``<prefix>_accuracy`` (mean over the class tasks, what
        single-target readers of the history look at)."""
        t, seen = len(self.tasks), max(values[2], 1.0)
        out = {f"{prefix}_loss": values[0] / seen}
        for i, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
            out[f"{prefix}_loss/{name}"] = values[3 + i] / seen
            out[f"{prefix}_{kind.metric}/{name}"] = values[3 + t + i] / seen
        if self.class_positions:
            out[f"{prefix}_accuracy"] = sum(values[3 + t + i] / seen for i in self.class_positions) / len(
                self.class_positions)
        return out

    def task_weights(self) -> dict[str, float]:
        """The loss's current task weights (one host read)."""
        weights = getattr(self.loss_fn, "weights", None)
        if weights is None:
            return {}
        return {f"task_weight/{k}": v for k, v in zip(self.names, weights().tolist(), strict=True)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: BatchSource, *, batch_size: int, device: torch.device,
                 observe: Observe | None = None) -> dict[str, float]:
        """``val_*`` metrics of ``model`` on ``data`` (no event weights, as in single-target validation)."""
        was_model, was_loss = model.training, self.loss_fn.training
        model.eval()
        self.loss_fn.eval()  # DWA sums training losses only
        totals = self.new_totals(device)
        try:
            for positions in torch.arange(len(data)).split(batch_size):
                batch = data.batch(positions, device)
                _, x, y = batch
                outputs = self.outputs(model(x))
                if observe is not None:
                    observe(batch, outputs)
                raw = self.loss_fn.raw_losses(outputs, y)
                total = torch.stack([v.float().reshape(()) for v in self.loss_fn.weighting(raw).values()]).sum()
                self.add(totals, total, raw, outputs, y, len(next(iter(y.values()))))
        finally:
            model.train(was_model)
            self.loss_fn.train(was_loss)
        return self.metrics(totals.tolist(), "val")


def task_gradient_extras(tasks_handler: Any) -> dict[str, Tensor]:
    """Last step's per-task gradient figures as 0-d device tensors (no host sync), for ``metrics.jsonl``."""
    norms = getattr(tasks_handler, "last_norms", None)
    cosine = getattr(tasks_handler, "last_cosine", None)
    if norms is None or cosine is None:
        return {}
    names = list(tasks_handler.tasks)
    out = {f"task_grad_norm/{t}": norms[i] for i, t in enumerate(names)}
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            out[f"task_grad_cos/{names[a]}/{names[b]}"] = cosine[a, b]
    scales = getattr(tasks_handler, "last_clip_scales", None)
    if scales is not None:
        out.update({f"task_clip_scale/{t}": scales[i] for i, t in enumerate(names)})
    group_norms = getattr(tasks_handler, "last_group_norms", None)  # per-modality norms, before their clip
    if group_norms is not None:
        out.update({f"group_grad_norm/{g}": group_norms[i] for i, g in enumerate(tasks_handler.groups)})
    return out
