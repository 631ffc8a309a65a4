"""Edits: a three-way merge of an edit made offline at a base version, and a reviewer settling the
conflicts it leaves. The base values are read back from the event log."""

from __future__ import annotations

from app.auth.scope import case_visible, in_subtree
from app.cases import deadlines, unit_of_work
from app.cases.actions import (
    Actor,
    Outcome,
    Refused,
    can_edit,
    category_row,
    get_case,
    open_conflict,
    require_base_version,
    require_case_for_op,
    start,
)
from app.cases.models import Case, Conflict, cell_of
from app.cases.reports import resolve_location
from app.errors import Forbidden, NotFound
from app.extensions import db
from app.regions.models import LEVELS, Region


def values_at(case: Case, version: int, names: list[str]) -> dict:
    """The values the fields had at ``version``, read back from the event log."""
    values: dict = {}
    if version < case.version:
        for changes in unit_of_work.current().changes_after(case, version):
            for name in names:
                if name in changes and name not in values:
                    values[name] = changes[name][0]
            if len(values) == len(names):
                break
    for name in names:
        if name not in values:
            values[name] = case.field_value(name) if name != "state" else case.state
    return values


def _normalise_changes(changes: dict) -> dict:
    """Client values in the form the server stores and compares."""
    out = dict(changes)
    if "location" in out:
        loc = out["location"]
        lat, lon, accuracy, original = resolve_location(loc)
        out["location"] = {"lat": lat, "lon": lon, "accuracy_m": accuracy}
        out["_location_original"] = original
    return out


def _check_field(actor: Actor, name: str, value) -> Region | None:
    """What can refuse a field's new value (and the micro-grid it names). Raises Refused."""
    if name == "category":
        category = category_row(value)
        if category is None or not category.active:
            raise Refused("unknown_category", errors={"changes.category": [f"unknown category {value!r}"]})
    elif name == "micro_grid_id":
        region = db.session.get(Region, value)
        if region is None or region.level != "micro_grid":
            raise Refused(errors={"changes.micro_grid_id": [f"unknown micro-grid {value!r}"]})
        if actor.user.role != "admin" and not in_subtree(region, actor.user.region):
            raise Refused("out_of_scope", status=403)
        return region
    return None


def _apply_field(actor: Actor, case: Case, name: str, value, original_location: dict | None = None) -> None:
    region = _check_field(actor, name, value)
    if name == "category":
        case.category = value
    elif name == "risk_level":
        case.risk_level = value
    elif name == "description":
        case.description = value
    elif name == "location":
        case.lat, case.lon, case.accuracy_m = value["lat"], value["lon"], value.get("accuracy_m")
        case.cell_lat, case.cell_lon = cell_of(case.lat, case.lon)
        if original_location is not None:
            case.location_original = original_location
    elif name == "micro_grid_id":
        old = {f"{lvl}_code": getattr(case, f"{lvl}_code") for lvl in LEVELS}
        for level in LEVELS:
            setattr(case, f"{level}_code", getattr(region, f"{level}_code"))
        unit_of_work.current().scope_exit(case, actor.now, old)


def update_case(actor: Actor, case: Case, base_version: int, changes: dict, *, redirected: bool = False) -> Outcome:
    """Three-way merge of an edit made at ``base_version``: fields the server has not touched since take
    the client's value; fields both changed differently keep the server's and become conflict records.
    Everything that can refuse the edit is checked before its first write.

    Raises Refused (out_of_scope, forbidden, base_version_ahead, unknown_category).
    """
    require_case_for_op(actor.user, case)
    if not can_edit(actor.user, case):
        raise Refused("forbidden", status=403)
    require_base_version(case, base_version, redirected)
    client = _normalise_changes(changes)
    original_location = client.pop("_location_original", None)
    apply, diverged = _three_way(case, base_version, client, redirected)
    for name, _, client_value in apply:
        _check_field(actor, name, client_value)
    outcome = start(redirected)
    applied: dict = {}
    for name, server_value, client_value in apply:
        _apply_field(actor, case, name, client_value, original_location)
        applied[name] = [server_value, client_value]
    for name, base_value, server_value, client_value in diverged:
        open_conflict(actor, case, outcome, base_version, name, base_value, server_value, client_value)
    if {"risk_level", "category"} & set(applied):
        deadlines.on_limits_changed(case, actor.now)
    if applied or outcome.conflicts:
        data = {"base_version": base_version}
        if outcome.conflicts:
            data["conflicts"] = [c["conflict_id"] for c in outcome.conflicts]
        if redirected:
            data["redirected"] = True
        unit_of_work.current().event(case, actor, "update", changes=applied, data=data)
    return outcome


def _three_way(case: Case, base_version: int, client: dict, redirected: bool) -> tuple[list, list]:
    """The fields to apply (name, server, client) and those changed both here and there (name, base,
    server, client). A redirected op's base names another case: every difference is a conflict."""
    base = values_at(case, base_version, list(client)) if not redirected else {}
    apply: list[tuple[str, object, object]] = []
    diverged: list[tuple[str, object, object, object]] = []
    for name, client_value in client.items():
        server_value = case.field_value(name)
        if server_value == client_value:
            continue
        base_value = base.get(name, object())
        if not redirected and server_value == base_value:
            apply.append((name, server_value, client_value))
        else:
            diverged.append((name, None if redirected else base_value, server_value, client_value))
    return apply, diverged


# ---------------------------------------------------------------------------------------------- conflicts


def resolve_conflict(actor: Actor, conflict: Conflict, choose: str, value=None) -> Conflict:
    """A reviewer settles a conflict: keep the server's value, take the field's, or set a new one. The
    choice is itself an event. Raises NotFound, Forbidden, Refused (conflict_resolved, ...)."""
    user = actor.user
    case = get_case(conflict.case_id, lock=True)
    if case is None or not case_visible(case, user):
        raise NotFound()
    if user.role not in ("reviewer", "admin"):
        raise Forbidden()
    if conflict.status != "open":
        raise Refused("conflict_resolved", status=409)
    changes: dict = {}
    if choose in ("client", "value"):
        if conflict.field == "state":
            raise Refused("state_conflict_needs_transition", status=409,
                          errors={"choose": ["settle a state conflict with a transition, then keep the server"]})
        new_value = conflict.client if choose == "client" else value
        if choose == "value":
            from app.sync.schemas import ChangesIn

            try:
                new_value = ChangesIn().load({conflict.field: value})[conflict.field]
            except Exception as exc:  # marshmallow's ValidationError carries the field messages
                messages = getattr(exc, "messages", {"value": [str(exc)]})
                raise Refused(errors={"value": messages.get(conflict.field, messages)}) from exc
            new_value = _normalise_changes({conflict.field: new_value})[conflict.field]
        old = case.field_value(conflict.field)
        if old != new_value:
            _apply_field(actor, case, conflict.field, new_value)
            changes[conflict.field] = [old, new_value]
        conflict.resolved_value = new_value
    else:
        conflict.resolved_value = case.field_value(conflict.field) if conflict.field != "state" else case.state
    conflict.status = "resolved"
    conflict.resolution = choose
    conflict.resolved_by = user.id
    conflict.resolved_at = actor.now
    unit_of_work.current().event(case, actor, "conflict_resolved", changes=changes,
                                 data={"conflict_id": conflict.id, "field": conflict.field, "choose": choose})
    return conflict
