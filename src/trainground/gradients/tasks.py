"""Per-task gradients: norms and conflicts, per-task and per-group clipping, PCGrad.

When one model serves several tasks (or modalities), summing the losses lets the task with
the largest gradient swamp the shared parameters. Here each task's gradient is computed on
its own, measured (norm, pairwise cosine on the shared parameters), optionally clipped on
its own and de-conflicted (PCGrad) before the tasks are combined; then each parameter group
(e.g. text encoder vs image encoder) can be clipped on its own too.

The functions are the maths on lists of gradients; :class:`TaskGradients` wraps them with
the bookkeeping a loop needs and is what the Guard calls (``backward(losses,
grad_multiplier=n, loss_scale=scale)``). Nothing here syncs with the host except
:meth:`TaskGradients.stats`, which reads every logged figure in one transfer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainground.errors import ConfigError
from trainground.gradients.norm_thresholds import DynamicClipConfig, NormThresholds

Grads = list[Tensor | None]  # one entry per parameter; None where the task does not reach it
_EPS = 1e-6


def task_gradients(
    losses: Mapping[str, Tensor], params: Sequence[Tensor], *, loss_scale: float | Tensor = 1.0
) -> dict[str, Grads]:
    """Each task's gradient w.r.t. ``params``, at true scale.

    The graph is kept until the last task. Gradients are taken of ``loss * loss_scale``
    (so fp16 gradients do not underflow under an AMP scaler) and divided by ``loss_scale``.

    Args:
        losses: ``{task: scalar loss}``, possibly sharing one graph.
        params: the parameters to differentiate.
        loss_scale: the AMP loss scale in use (1 without a scaler).
    """
    names, out = list(losses), {}
    scaled = not (isinstance(loss_scale, (int, float)) and loss_scale == 1.0)
    for k, name in enumerate(names):
        loss = losses[name]
        if not loss.requires_grad:  # a constant task loss (e.g. masked out) contributes nothing
            out[name] = [None] * len(params)
            continue
        grads = torch.autograd.grad(
            loss * loss_scale if scaled else loss, params, retain_graph=k < len(names) - 1, allow_unused=True
        )
        out[name] = [None if g is None else (g / loss_scale if scaled else g) for g in grads]
    return out


def gradient_norm(grads: Grads) -> Tensor:
    """L2 norm of a list of gradients (None entries count as 0), as a 0-d tensor."""
    present = [g for g in grads if g is not None]
    if not present:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in present]))


def flatten(grads_by_task: Mapping[str, Grads], positions: Sequence[int], params: Sequence[Tensor]) -> Tensor:
    """``[T, P]`` matrix of the tasks' gradients on the parameters at ``positions`` (zeros where None)."""
    rows = []
    for grads in grads_by_task.values():
        parts = [
            (grads[i] if grads[i] is not None else torch.zeros_like(params[i])).reshape(-1).float() for i in positions
        ]
        rows.append(torch.cat(parts) if parts else torch.zeros(0))
    return torch.stack(rows)


def cosine_matrix(flat: Tensor) -> Tensor:
    """``[T, T]`` pairwise cosine similarity of the rows of ``flat`` (0 for a zero row)."""
    gram = flat @ flat.T
    norms = gram.diagonal().clamp_min(0).sqrt()
    return gram / (norms[:, None] * norms[None, :]).clamp_min(_EPS**2)


def pcgrad(flat: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Project conflicting task gradients (PCGrad): for each task ``i`` and every other task
    ``j`` in random order, if ``g_i . g_j < 0`` remove from ``g_i`` its component along ``g_j``.

    Branch-free (``min(dot, 0)``), so it runs on the device without a host sync. With two
    tasks the projected gradients never have a negative inner product.

    Args:
        flat: ``[T, P]`` task gradients (rows) on the shared parameters.
        generator: CPU generator for the random order (seeded for reproducibility).

    Returns:
        ``[T, P]`` projected gradients; their sum is the PCGrad update.

    References:
        Yu, Kumar, Gupta, Levine, Hausman, Finn. "Gradient Surgery for Multi-Task Learning."
        NeurIPS 2020 (Algorithm 1). https://arxiv.org/abs/2001.06782
    """
    tasks = flat.shape[0]
    squared = (flat * flat).sum(dim=1).clamp_min(_EPS**2)
    out = flat.clone()
    for i in range(tasks):
        for j in torch.randperm(tasks, generator=generator).tolist():  # CPU permutation: no device sync
            if j != i:
                dot = out[i] @ flat[j]
                out[i] -= dot.clamp(max=0.0) / squared[j] * flat[j]
    return out


def clip_scale(norm: Tensor, max_norm: float | Tensor) -> Tensor:
    """``min(1, max_norm / norm)``: the factor that brings a gradient of ``norm`` within ``max_norm``.

    A non-finite norm gives a non-finite factor on purpose: the overflow must stay visible to
    the AMP scaler / spike guard downstream instead of being clipped into a plausible step.
    """
    return (max_norm / (norm + _EPS)).clamp(max=1.0)


def clip_per_task_(grads_by_task: Mapping[str, Grads], max_norm: float | Tensor | None,
                   dynamic: NormThresholds | None = None) -> Tensor:
    """Scale each task's gradient in place so its norm is at most ``max_norm`` (one limit, or ``[T]``
    limits), or at most its dynamic limit, whichever is smaller; returns ``[T]`` factors."""
    norms = [gradient_norm(g) for g in grads_by_task.values()]
    device = next((n.device for n in norms if n.device.type != "cpu"), torch.device("cpu"))
    stacked = torch.stack([n.to(device) for n in norms])
    if dynamic is None:  # a Python float limit: the same arithmetic (to the bit) as before dynamic limits existed
        scales = clip_scale(stacked, math.inf if max_norm is None else max_norm)
    else:
        cap = torch.full_like(stacked, math.inf) if max_norm is None else torch.as_tensor(max_norm).to(stacked)
        scales = clip_scale(stacked, dynamic.limits(stacked, cap.expand_as(stacked)))
    for k, grads in enumerate(grads_by_task.values()):
        for g in grads:
            if g is not None:
                g.mul_(scales[k].to(g.device, g.dtype))
    return scales


def clip_groups_(grads: Grads, groups: Mapping[str, Sequence[int]], max_norm: Mapping[str, float | None],
                 dynamic: NormThresholds | None = None) -> Tensor:
    """Clip each parameter group's part of ``grads`` (positions per group) to its own max norm
    (None: no fixed limit) or its dynamic limit, whichever is smaller, in place; returns the
    ``[G]`` norms before clipping."""
    if not groups:
        return torch.zeros(0)
    parts = {name: [grads[i] for i in positions] for name, positions in groups.items()}
    norms = [gradient_norm(part) for part in parts.values()]
    device = next((n.device for n in norms if n.device.type != "cpu"), torch.device("cpu"))
    stacked = torch.stack([n.to(device) for n in norms])
    if dynamic is None:  # one Python float limit per group: the same arithmetic as before dynamic limits existed
        scales = [clip_scale(norm, max_norm[g]) for norm, g in zip(norms, groups, strict=True)]
    else:
        cap = torch.tensor([math.inf if max_norm[g] is None else float(max_norm[g]) for g in groups], device=device)
        scales = list(clip_scale(stacked, dynamic.limits(stacked, cap)))
    for scale, part in zip(scales, parts.values(), strict=True):
        for g in part:
            if g is not None:
                g.mul_(scale.to(g.device, g.dtype))
    return stacked


def _unique(params: Iterable[Tensor] | nn.Module) -> list[Tensor]:
    items = params.parameters() if isinstance(params, nn.Module) else params
    seen: dict[int, Tensor] = {}
    for p in items:
        if p.requires_grad:
            seen.setdefault(id(p), p)
    return list(seen.values())


class TaskGradients:
    """Per-task backward for a multi-task (or multi-modal) model, with logging and clipping.

    ``backward(losses)`` computes each task's gradient, records per-task norms and the cosine
    matrix on the shared parameters, clips each task to ``max_norm``, applies PCGrad on the
    shared parameters, sums the tasks, clips each parameter group to its own limit, and *adds*
    the result times ``grad_multiplier * loss_scale`` to ``param.grad``, exactly where a plain
    ``(loss * grad_multiplier * loss_scale).backward()`` would leave it. So accumulation
    windows, an AMP scaler's ``unscale_`` and the optimizer work unchanged.

    Args:
        params: every trainable parameter (a module or an iterable): trunk, heads, and the
            log-variances of an uncertainty weighting.
        shared: the parameters the tasks share (norms, conflicts and PCGrad are computed on
            them); default: all of ``params``.
        groups: ``{name: parameters}`` clipped on their own after the tasks are combined
            (per-modality clipping); a parameter may belong to one group at most.
        max_norm: per-task clip: each task's whole gradient is scaled to at most this norm.
        group_max_norm: one limit for every group, or ``{group: limit}``.
        pcgrad: project conflicting task gradients (Yu et al. 2020) on the shared parameters.
        seed: seed of PCGrad's random task order.
        dynamic: dynamic limits (``norm_thresholds``): each task and each group is also clipped
            at a running statistic of its own gradient norm (AutoClip's percentile or ZClip's
            z-score, per part); a fixed limit given above stays a cap on top. With a dynamic
            kind every task is clipped (fixed ``max_norm`` or not), and groups need no fixed limit.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | nn.Module,
        *,
        shared: Iterable[Tensor] | nn.Module | None = None,
        groups: Mapping[str, Iterable[Tensor] | nn.Module] | None = None,
        max_norm: float | None = None,
        group_max_norm: float | Mapping[str, float] | None = None,
        pcgrad: bool = False,
        seed: int = 0,
        dynamic: DynamicClipConfig | None = None,
    ) -> None:
        self.params = _unique(params)
        position = {id(p): i for i, p in enumerate(self.params)}
        shared_params = self.params if shared is None else _unique(shared)
        if any(id(p) not in position for p in shared_params):
            raise ConfigError("TaskGradients: every shared parameter must also be in params")
        self.shared = [position[id(p)] for p in shared_params]
        self.groups: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for name, members in (groups or {}).items():
            idx = []
            for p in _unique(members):
                if id(p) not in position:
                    raise ConfigError(f"TaskGradients: group {name!r} has a parameter that is not in params")
                if id(p) in owner:
                    raise ConfigError(f"TaskGradients: a parameter is in groups {owner[id(p)]!r} and {name!r}")
                owner[id(p)] = name
                idx.append(position[id(p)])
            self.groups[name] = idx
        if max_norm is not None and max_norm <= 0:
            raise ConfigError(f"TaskGradients: max_norm must be > 0, got {max_norm}")
        self.dynamic = dynamic if dynamic is not None and dynamic.enabled else None
        if self.groups and group_max_norm is None and self.dynamic is None:
            raise ConfigError("TaskGradients: groups need group_max_norm (one limit, or one per group) or dynamic limits")
        limits = group_max_norm if isinstance(group_max_norm, Mapping) else {g: group_max_norm for g in self.groups}
        if self.groups and (set(limits) != set(self.groups)
                            or any((v is None and self.dynamic is None) or (v is not None and v <= 0) for v in limits.values())):
            raise ConfigError(f"TaskGradients: group_max_norm needs a limit > 0 for each group {list(self.groups)}")
        self.max_norm, self.group_max_norm, self.pcgrad = max_norm, dict(limits) if self.groups else {}, pcgrad
        # Running statistics per group (built now) and per task (built at the first backward, when the tasks are known).
        self.group_thresholds = NormThresholds(list(self.groups), self.dynamic) if self.dynamic and self.groups else None
        self.task_thresholds: NormThresholds | None = None
        self.generator = torch.Generator().manual_seed(seed)
        self.tasks: list[str] = []
        # Last step's figures, kept as device tensors; read them with stats().
        self.last_norms: Tensor | None = None
        self.last_cosine: Tensor | None = None
        self.last_clip_scales: Tensor | None = None
        self.last_group_norms: Tensor | None = None

    def backward(
        self, losses: Mapping[str, Tensor], *, grad_multiplier: float = 1.0, loss_scale: float | Tensor = 1.0
    ) -> None:
        """Accumulate ``combined(task gradients) * grad_multiplier * loss_scale`` into ``param.grad``.

        Args:
            losses: ``{task: scalar loss}`` (e.g. ``MultiTaskLoss.losses(outputs, targets)``).
            grad_multiplier: weight of this micro-batch (the Guard passes its sample count).
            loss_scale: the AMP loss scale; gradients are clipped and combined at true scale.
        """
        if not losses:
            raise ConfigError("TaskGradients.backward needs at least one task loss")
        self.tasks = list(losses)
        grads = task_gradients(losses, self.params, loss_scale=loss_scale)
        flat = flatten(grads, self.shared, self.params)
        self.last_norms = flat.norm(dim=1)
        self.last_cosine = cosine_matrix(flat)
        self.last_clip_scales = None
        if self.dynamic is not None and (self.task_thresholds is None or self.task_thresholds.names != self.tasks):
            if self.task_thresholds is not None:
                raise ConfigError(f"TaskGradients: the tasks changed from {self.task_thresholds.names} to {self.tasks}; "
                                  "dynamic limits keep one history per task")
            self.task_thresholds = NormThresholds(self.tasks, self.dynamic)
        if self.max_norm is not None or self.task_thresholds is not None:
            self.last_clip_scales = clip_per_task_(grads, self.max_norm, self.task_thresholds)
            flat = flat * self.last_clip_scales[:, None].to(flat.device)
        combined: Grads = [None] * len(self.params)
        for task_grads in grads.values():
            for i, g in enumerate(task_grads):
                if g is not None:
                    combined[i] = g if combined[i] is None else combined[i] + g
        if self.pcgrad and len(self.tasks) > 1 and self.shared:
            update = pcgrad(flat, generator=self.generator).sum(dim=0)
            offset = 0
            for i in self.shared:
                size = self.params[i].numel()
                if combined[i] is not None:  # a parameter no task reaches keeps no gradient
                    combined[i] = update[offset : offset + size].view_as(self.params[i]).to(self.params[i].dtype)
                offset += size
        self.last_group_norms = (clip_groups_(combined, self.groups, self.group_max_norm, self.group_thresholds)
                                 if self.groups else None)
        factor = loss_scale * grad_multiplier
        for p, g in zip(self.params, combined, strict=True):
            if g is None:
                continue
            g = (g * factor).to(p.dtype)
            if p.grad is None:
                p.grad = g.detach()
            else:
                p.grad.add_(g)

    def stats(self) -> dict[str, float]:
        """Last step's per-task norms (shared parameters, before clipping), pairwise cosines,
        clip factors and group norms (before clipping), as floats: one host sync."""
        if self.last_norms is None or self.last_cosine is None:
            return {}
        tasks = self.tasks
        pairs = [(a, b) for a in range(len(tasks)) for b in range(a + 1, len(tasks))]
        parts = [self.last_norms]
        if pairs:
            rows, cols = zip(*pairs, strict=True)
            parts.append(self.last_cosine[list(rows), list(cols)])
        if self.last_clip_scales is not None:
            parts.append(self.last_clip_scales)
        if self.last_group_norms is not None:
            parts.append(self.last_group_norms)
        device = self.last_norms.device
        values = torch.cat([t.float().to(device) for t in parts]).tolist()  # the one host sync
        names = [f"task_grad_norm/{t}" for t in tasks] + [f"task_grad_cos/{tasks[a]}/{tasks[b]}" for a, b in pairs]
        if self.last_clip_scales is not None:
            names += [f"task_clip_scale/{t}" for t in tasks]
        if self.last_group_norms is not None:
            names += [f"group_grad_norm/{g}" for g in self.groups]
        return dict(zip(names, values, strict=True))

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        if self.group_thresholds is not None:
            state["group_thresholds"] = self.group_thresholds.state_dict()
        if self.task_thresholds is not None:
            state["task_thresholds"] = self.task_thresholds.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.group_thresholds is not None and "group_thresholds" in state:
            self.group_thresholds.load_state_dict(state["group_thresholds"])
        if self.dynamic is not None and "task_thresholds" in state:
            self.task_thresholds = NormThresholds(list(state["task_thresholds"]["names"]), self.dynamic)
            self.task_thresholds.load_state_dict(state["task_thresholds"])
