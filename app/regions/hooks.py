"""Callbacks run when a region moves under another parent (features that copy ancestor codes register)."""

from collections.abc import Callable

region_moved_hooks: list[Callable] = []
