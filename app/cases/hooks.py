"""Where other features hook into cases, and where cases hook into others. Wired by the app factory
(``register``, and each feature's own ``register``), never as a side effect of an import."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import update

from app.cases.models import Case
from app.extensions import db
from app.regions.hooks import region_moved_hooks

# Effect name (app/cases/workflow.py's EFFECTS) -> callables (actor, case, row, changes, data) another
# feature runs for it inside the transition, before its event is written (the points, app/stats/points.py).
effect_hooks: dict[str, list[Callable]] = {}


def on_effects(names: tuple[str, ...], hook: Callable) -> None:
    """Run ``hook`` for each of these effects (once, however often the app factory runs)."""
    for name in names:
        hooks = effect_hooks.setdefault(name, [])
        if hook not in hooks:
            hooks.append(hook)


def register(app: Flask) -> None:
    """The cases' own wiring: a region moved under another parent takes its cases' ancestor codes along."""
    if _cases_follow_region not in region_moved_hooks:
        region_moved_hooks.append(_cases_follow_region)


def _cases_follow_region(region, values: dict) -> None:
    key = getattr(Case, f"{region.level}_code")
    db.session.execute(update(Case).where(key == region.code).values(**values)
                       .execution_options(synchronize_session=False))
