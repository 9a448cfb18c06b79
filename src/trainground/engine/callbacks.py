"""Typed callbacks: one no-op method per :class:`Event`; override what you watch."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from trainground.engine.events import Event
from trainground.engine.state import TrainState


class Callback:
    """Base class of everything that watches a run. Every hook receives the state.

    ``state_key`` names the callback's state in checkpoints (None: the class name); set it
    when two callbacks of one class must keep their states apart whatever their order.
    """

    state_key: str | None = None

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

    def on_val_forward(self, state: TrainState) -> None:
        """A validation batch went through the model (eval mode, no gradients): ``state.batch``,
        ``state.logits``; both are the training batch's again once the evaluation ends."""

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
        self._handlers: dict[Event, list[Any]] = {}
        self._seen: list[Callback] = list(self.callbacks)

    def listens(self, event: Event) -> bool:
        """Whether any callback overrides ``on_<event>`` (so the loop can skip preparing it)."""
        handlers = self._handlers.get(event)
        if handlers is None or self._seen != self.callbacks:
            handlers = self._resolve(event)
        return bool(handlers)

    def fire(self, event: Event, state: TrainState) -> None:
        handlers = self._handlers.get(event)
        if handlers is None or self._seen != self.callbacks:
            handlers = self._resolve(event)
        for handler in handlers:
            handler(state)

    def _resolve(self, event: Event) -> list[Any]:
        # Fired several times per step: the bound methods are looked up once per event, and the
        # base class's no-ops are left out (a step fires four events at every callback).
        if self._seen != self.callbacks:
            self._handlers, self._seen = {}, list(self.callbacks)
        name = f"on_{event.value}"
        noop = getattr(Callback, name)
        handlers = [getattr(cb, name) for cb in self.callbacks]
        self._handlers[event] = [h for h in handlers if getattr(h, "__func__", None) is not noop]
        return self._handlers[event]

    def _keys(self) -> list[str]:
        # Keyed by name, not position: adding, removing or reordering other callbacks between a
        # checkpoint and its resume leaves every callback its own state. The name is the
        # callback's ``state_key`` (default: its class name); the second callback of one name
        # is "Name#2", and so on.
        keys, seen = [], {}
        for cb in self.callbacks:
            name = str(getattr(cb, "state_key", None) or type(cb).__name__)
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks, strict=True)}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        states = _by_name(states)
        for key, cb in zip(self._keys(), self.callbacks, strict=True):
            if key in states:
                cb.load_state_dict(states[key])


_OLD_KEY = re.compile(r"^(\d+):(.+)$")


def _by_name(states: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Checkpoints written before callbacks were keyed by name used ``"<position>:<class>"``;
    read those as the n-th callback of that class (position order), which is what the new keys
    mean. Checkpoints with the new keys pass through."""
    if not states or not all(_OLD_KEY.match(key) for key in states):
        return states
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for key in sorted(states, key=lambda k: int(_OLD_KEY.match(k).group(1))):  # type: ignore[union-attr]
        name = _OLD_KEY.match(key).group(2)  # type: ignore[union-attr]
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name}#{seen[name]}"] = states[key]
    return out
