"""Several targets per sample: typed task declarations and an in-memory multi-target dataset.

A multi-target dataset yields items ``(index, x, y)`` where ``y`` is ``{task: target}``
(an int64 class id for a ``"class"`` task, a float (or float vector) for ``"regression"``,
a fixed-size padded tensor for structured kinds a later module registers) and ``x`` a
tensor or a ``{name: tensor}`` mapping (several modalities). It declares its tasks in
``.tasks``: ``fit`` reads them to build the heads' loss and the per-task metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainground.data.labels import LabelEncoder


@dataclass(frozen=True)
class TaskSpec:
    """One target of a multi-target dataset.

    Attributes:
        name: the task's key in targets and in the model's output dict.
        kind: ``"class"`` (class ids, cross-entropy, accuracy), ``"regression"`` (floats,
            MSE, MAE), or a kind registered with ``trainground.engine.register_task_kind``.
        num_classes: classes of a ``"class"`` task (the head's width); None for the others.
        classes: the user's label values of a class task, id order (for ``predict``).
        shape: a target's shape per sample (``()`` for a class id or a scalar).
        scale: a regression target's (mean, std) over the training rows: its head is trained on
            standardised values and the model answers in the original units (None: not standardised).
    """

    name: str
    kind: str = "class"
    num_classes: int | None = None
    classes: tuple[Any, ...] | None = field(default=None, repr=False)
    shape: tuple[int, ...] = ()
    scale: tuple[float, float] | None = None

    @property
    def out_features(self) -> int:
        """Width of the head a model needs for this task."""
        if self.kind == "class":
            return int(self.num_classes or 0)
        return int(np.prod(self.shape)) if self.shape else 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "num_classes": self.num_classes,
                "classes": None if self.classes is None else list(self.classes), "shape": list(self.shape),
                "scale": None if self.scale is None else list(self.scale)}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> TaskSpec:
        classes, scale = values.get("classes"), values.get("scale")
        return cls(str(values["name"]), str(values.get("kind", "class")), values.get("num_classes"),
                   None if classes is None else tuple(classes), tuple(values.get("shape", ())),
                   None if scale is None else (float(scale[0]), float(scale[1])))


def gather(x: Tensor | Mapping[str, Tensor], positions: Tensor) -> Any:
    """``x[positions]`` for a tensor or for every tensor of a (nested) mapping."""
    if isinstance(x, Mapping):
        return {k: gather(v, positions) for k, v in x.items()}
    return x[positions]


def num_rows(x: Tensor | Mapping[str, Tensor]) -> int:
    """Samples in a tensor or in the first tensor of a mapping."""
    while isinstance(x, Mapping):
        x = next(iter(x.values()))
    return int(x.shape[0])


@dataclass(frozen=True)
class MultiTargetDataset(torch.utils.data.Dataset):
    """Features (a tensor or ``{name: tensor}``), one target tensor per task, input indices.

    Items are ``(index, x, {task: target})``; ``get_batch`` gathers a batch in one indexing
    op per tensor. ``labels`` is the first class task's targets (what a stratified split and
    the single-label views use); ``targets`` holds every task's.

    Args:
        features: ``[N, ...]`` float tensor or ``{modality: [N, ...]}``.
        targets: ``{task: [N, ...]}``, one entry per ``tasks`` name, same order.
        index: ``[N]`` int64 input rows.
        tasks: the task declarations.
        kind: ``"table"``, ``"image"`` or ``"signal"``: decides the default trunk.
        name: where the data came from, for messages.
        schema: how raw input became ``features`` (for prediction).
        encoders: ``{task: LabelEncoder}`` of the class tasks.
    """

    features: Any
    targets: dict[str, Tensor]
    index: Tensor
    tasks: tuple[TaskSpec, ...]
    kind: str = "table"
    name: str = "data"
    schema: Any = None
    encoders: dict[str, LabelEncoder] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = num_rows(self.features)
        names = [t.name for t in self.tasks]
        if list(self.targets) != names:
            raise ValueError(f"targets {list(self.targets)} do not match the tasks {names} (same names, same order)")
        bad = {k: tuple(v.shape) for k, v in self.targets.items() if v.shape[:1] != (n,)}
        if bad or self.index.shape != (n,):
            raise ValueError(f"features ({n} rows), targets {bad or ''} and index {tuple(self.index.shape)} "
                             "disagree on the number of samples")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, Any, dict[str, Tensor]]:
        return self.index[i], gather(self.features, torch.as_tensor(i)), {k: v[i] for k, v in self.targets.items()}

    def get_batch(self, positions: Tensor) -> tuple[Tensor, Any, dict[str, Tensor]]:
        return self.index[positions], gather(self.features, positions), {k: v[positions] for k, v in self.targets.items()}

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def labels(self) -> Tensor:
        """The first class task's class ids (the first task's targets if none is a class task)."""
        first = next((t.name for t in self.tasks if t.kind == "class"), self.tasks[0].name)
        return self.targets[first]

    @property
    def num_classes(self) -> int:
        """Classes of the first class task (what single-label code reads)."""
        first = next((t for t in self.tasks if t.kind == "class"), None)
        return int(first.num_classes or 0) if first is not None else 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        if isinstance(self.features, Mapping):
            raise TypeError("a dataset with several inputs has no single input_shape; see input_shapes")
        return tuple(self.features.shape[1:])

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if isinstance(self.features, Mapping):
            return {k: tuple(v.shape[1:]) for k, v in self.features.items()}
        return {"x": tuple(self.features.shape[1:])}

    def subset(self, positions: Tensor | np.ndarray) -> MultiTargetDataset:
        """The samples at ``positions`` (positions in this dataset, not input indices)."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        return replace(self, features=gather(self.features, pos), index=self.index[pos],
                       targets={k: v[pos] for k, v in self.targets.items()})

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks: {self.task_names}")


def tasks_of(data: Any) -> tuple[TaskSpec, ...] | None:
    """The task declarations of a multi-target dataset (``.tasks``), or None for a single-target one."""
    tasks = getattr(data, "tasks", None)
    if tasks is None:
        return None
    tasks = tuple(tasks)
    if not tasks or not all(isinstance(t, TaskSpec) for t in tasks):
        raise TypeError(f"{type(data).__name__}.tasks must be a non-empty sequence of TaskSpec")
    return tasks


def class_task(name: str, labels: Sequence[Any] | np.ndarray) -> tuple[TaskSpec, Tensor, LabelEncoder]:
    """A class task from raw label values: its spec, the class ids and the encoder."""
    encoder = LabelEncoder.fit(np.asarray(labels))
    ids = torch.as_tensor(encoder.encode(np.asarray(labels)), dtype=torch.long)
    return TaskSpec(name, "class", len(encoder.classes), tuple(encoder.classes)), ids, encoder
