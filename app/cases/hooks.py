"""Callbacks run inside a transition, before its event is written (deadlines, points)."""

from collections.abc import Callable

transition_hooks: list[Callable] = []
