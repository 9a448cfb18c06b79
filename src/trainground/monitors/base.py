"""The monitor protocol: observe, never change. ``update`` is cheap and stays on the device;
``compute`` does the host work; state survives checkpoints."""

from __future__ import annotations

from typing import Any


class Monitor:
    """Base class of monitors (gradient, activation and per-sample statistics).

    Monitors know nothing of the training loop: the loop (or a user's own loop) calls
    ``update`` with tensors, and reads ``compute`` when it wants numbers. ``update``
    must not synchronise with the host; ``compute`` may.
    """

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Take in one step's evidence (tensors on the training device)."""
        raise NotImplementedError

    def compute(self) -> Any:
        """What was observed since the last ``reset``, as host values (dict or DataFrame)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what was observed (e.g. at the start of an epoch)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint so a resumed run continues exactly; empty if stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
