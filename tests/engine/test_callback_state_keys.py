"""Callback states in checkpoints are keyed by name, not by position."""

from __future__ import annotations

from typing import Any

from trainground.engine import Callback, CallbackList


class Counter(Callback):
    def __init__(self, value: int = 0, key: str | None = None) -> None:
        self.value, self.state_key = value, key

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]


class Other(Callback):
    def state_dict(self) -> dict[str, Any]:
        return {"other": 1}


def test_states_follow_their_callback_when_the_list_changes() -> None:
    saved = CallbackList([Counter(3), Counter(7, key="second")]).state_dict()
    assert set(saved) == {"Counter", "second"}
    first, second = Counter(), Counter(key="second")
    CallbackList([Other(), second, first]).load_state_dict(saved)  # reordered, one more in front
    assert (first.value, second.value) == (3, 7)


def test_two_callbacks_of_one_class_are_numbered() -> None:
    saved = CallbackList([Counter(1), Counter(2)]).state_dict()
    assert saved == {"Counter": {"value": 1}, "Counter#2": {"value": 2}}


def test_checkpoints_keyed_by_position_still_load() -> None:
    old = {"0:Other": {"other": 1}, "1:Counter": {"value": 5}, "2:Counter": {"value": 9}}
    first, second = Counter(), Counter()
    CallbackList([first, Other(), second]).load_state_dict(old)
    assert (first.value, second.value) == (5, 9)
