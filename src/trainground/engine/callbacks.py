"""Typed callbacks: one no-op method per :class:`Event`; override what you watch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trainground.engine.events import Event
from trainground.engine.state import TrainState


class Callback:
    """Base class of everything that watches a run. Every hook receives the state."""

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first batch (also after a resume)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before the first batch of an epoch."""

    def on_batch_start(self, state: TrainState) -> None:
        """A batch was drawn; ``state.batch`` holds it."""

    def on_after_forward(self, state: TrainState) -> None:
        """``state.logits`` and ``state.loss`` are computed, no gradients yet."""

    def on_after_backward(self, state: TrainState) -> None:
        """Gradients are in ``param.grad``, before the optimizer step."""

    def on_batch_end(self, state: TrainState) -> None:
        """The optimizer stepped; ``state.step`` counts it."""

    def on_epoch_end(self, state: TrainState) -> None:
        """The epoch is evaluated; ``state.epoch_metrics`` holds the results."""

    def on_checkpoint(self, state: TrainState) -> None:
        """A checkpoint is about to be written: flush buffers so disk matches ``state_dict()``."""

    def on_fit_end(self, state: TrainState) -> None:
        """Training is over."""

    def state_dict(self) -> dict[str, Any]:
        """State to put in checkpoints so a resumed run continues exactly; empty if stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class CallbackList:
    """Calls every callback for an event, in order; keys their state for checkpoints."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must subclass trainground.Callback, got {type(cb).__name__}")

    def fire(self, event: Event, state: TrainState) -> None:
        method = f"on_{event.value}"
        for cb in self.callbacks:
            getattr(cb, method)(state)

    def _keys(self) -> list[str]:
        # Position + class name: stable for the same callback list, and readable.
        return [f"{i}:{type(cb).__name__}" for i, cb in enumerate(self.callbacks)]

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks, strict=True)}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        for key, cb in zip(self._keys(), self.callbacks, strict=True):
            if key in states:
                cb.load_state_dict(states[key])
