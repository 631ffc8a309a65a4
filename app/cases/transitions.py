"""Moving a case through the workflow. The table in app/cases/workflow.py says which move is possible, who
may make it, what it needs and what it does (``EFFECTS``); this module checks the first three and runs
the effects, each a small function named in ``_EFFECTS`` (or registered by another feature through
app/cases/hooks.py, as the points are)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select

from app.auth.scope import case_visible, in_subtree
from app.cases import deadlines, hooks, unit_of_work, workflow
from app.cases.actions import (
    Actor,
    Outcome,
    Refused,
    get_case,
    open_conflict,
    require_base_version,
    require_case_for_op,
    start,
    username,
)
from app.cases.merge import values_at
from app.cases.models import OPEN_STATES, Case, CasePhoto, CaseStage
from app.cases.notes import add_note, append_note
from app.database import utcnow
from app.extensions import db
from app.users.models import User

HANDLING_UP = {"grid": "village", "village": "township", "township": "city"}


@dataclass
class Step:
    """One transition under way: what its effects read (the row, the params, what the needs resolved) and
    what they write (the changes and data of its event)."""

    actor: Actor
    case: Case
    row: workflow.Transition
    params: dict
    extras: dict
    changes: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def transition(actor: Actor, case: Case, action: str, base_version: int, params: dict, *,
               redirected: bool = False) -> Outcome:
    """Move a case through the workflow, checked against its current state and the actor's role.

    Already done since ``base_version`` → no-op flagged ``stale_transition``; impossible now but possible
    at the base → a conflict on ``state``. Raises Refused (out_of_scope, forbidden,
    transition_not_allowed, validation_failed, base_version_ahead).
    """
    user = actor.user
    require_case_for_op(user, case)
    require_base_version(case, base_version, redirected)
    outcome = start(redirected)
    row = workflow.find(case.state, action)
    if row is None:
        return _not_possible_now(actor, case, action, base_version, params, outcome)
    if not _allowed(user, case, row.roles):
        raise Refused("forbidden", status=403, errors={"action": [f"a {user.role} may not {action} this case"]})
    step = Step(actor, case, row, params, _check_needs(actor, case, row, params),
                data={"action": action, "base_version": base_version})
    if params.get("reason"):
        step.data["reason"] = params["reason"]
    if row.next and row.next != case.state:
        step.changes["state"] = [case.state, row.next]
        case.state = row.next
    for effect in row.effects:
        name, _, arg = effect.partition(":")
        _run_effect(step, name, arg)
    uow = unit_of_work.current()
    note = params.get("note")
    new_note = bool(note) and not uow.note_exists(note["id"])
    if new_note:
        step.data["note_id"] = note["id"]
    version = uow.event(case, actor, "transition", changes=step.changes, data=step.data)
    if new_note:
        outcome.flags += append_note(actor, case, note, version, _note_role(action))
    return outcome


def _note_role(action: str) -> str:
    return "rectification" if action == "resolve" else "evidence"


def _not_possible_now(actor: Actor, case: Case, action: str, base_version: int, params: dict,
                      outcome: Outcome) -> Outcome:
    """The action is impossible in the case's state. Made offline from a state where it was possible: if
    the server already did it, a stale no-op; else a conflict on ``state``. Raises Refused otherwise."""
    base_state = values_at(case, base_version, ["state"])["state"] if base_version < case.version else case.state
    base_row = workflow.find(base_state, action) if base_state != case.state else None
    if base_row is None:
        raise Refused("transition_not_allowed", status=409,
                      errors={"action": [f"{action} is not possible in state {case.state}"]})
    if base_row.next == case.state or _already_done(case, action):
        outcome.flags.append("stale_transition")
        _keep_note(actor, case, action, params)
        return outcome
    conflict_id = open_conflict(actor, case, outcome, base_version, "state", base_state, case.state,
                                base_row.next or base_state, action=action)
    _keep_note(actor, case, action, params)
    unit_of_work.current().event(case, actor, "transition_conflict", data={
        "action": action, "conflicts": [conflict_id], "base_version": base_version})
    return outcome


def _keep_note(actor: Actor, case: Case, action: str, params: dict) -> None:
    """A note sent with a transition that did not happen is kept as a note of its own."""
    if params.get("note"):
        add_note(actor, case, params["note"], default_role=_note_role(action))


def _already_done(case: Case, action: str) -> bool:
    return (action == "suspend" and case.suspended_at is not None) or (
        action == "resume" and case.suspended_at is None)


def _allowed(user: User, case: Case, roles: tuple[str, ...]) -> bool:
    if user.role in roles and user.role != "volunteer":
        return True
    if "reporter" in roles and case.reporter_id == user.id:
        return True
    return "assignee" in roles and case.assignee_id == user.id


# ---------------------------------------------------------------------------------------------- needs


def _check_needs(actor: Actor, case: Case, row: workflow.Transition, params: dict) -> dict:
    """Checks what the action needs; returns the resolved extras (assignee user, target case)."""
    extras: dict = {}
    errors: dict = {}
    for need in row.needs:
        _NEEDS[need](actor, case, params, extras, errors)
    if errors:
        raise Refused(errors=errors)
    return extras


def _need_reason(actor, case, params, extras, errors) -> None:
    if not (params.get("reason") or "").strip():
        errors["reason"] = ["a reason is required"]


def _need_target(actor, case, params, extras, errors) -> None:
    target_id = params.get("target")
    target = get_case(target_id) if target_id else None
    if target is None or not case_visible(target, actor.user):
        errors["target"] = ["the case to merge into is required and must be visible to you"]
    elif target.id == case.id:
        errors["target"] = ["a case cannot be merged into itself"]
    elif target.township_code != case.township_code:
        errors["target"] = ["duplicates are merged within one township"]
    elif target.state in ("merged", "rejected"):
        errors["target"] = [f"the target case is {target.state}"]
    else:
        extras["target"] = target


def _need_assignee_or_unit(actor, case, params, extras, errors) -> None:
    name = params.get("assignee")
    if not name:
        if not (params.get("unit") or "").strip():
            errors["assignee"] = ["an assignee (username) or a unit is required"]
        return
    assignee = db.session.scalar(select(User).where(User.username == name))
    region = actor.user.region
    if assignee is None or not assignee.is_active or not (
            actor.user.role == "admin" or in_subtree(assignee.region, region) or in_subtree(region, assignee.region)):
        errors["assignee"] = [f"unknown user {name!r} in your region"]
    else:
        extras["assignee"] = assignee


def _need_rectification(actor, case, params, extras, errors) -> None:
    note = params.get("note") or {}
    has_photo = bool(note.get("photos")) or db.session.scalar(
        select(func.count()).where(CasePhoto.case_id == case.id, CasePhoto.role == "rectification")) > 0
    if not has_photo and not (note.get("text") or "").strip():
        errors["note"] = ["resolving needs a rectification photo or a note"]


def _need_state(test: Callable[[Case], bool], message: str):
    def check(actor, case, params, extras, errors) -> None:
        if not test(case):
            errors["action"] = [message]
    return check


_NEEDS = {
    "reason": _need_reason,
    "target": _need_target,
    "assignee_or_unit": _need_assignee_or_unit,
    "rectification_photo_or_note": _need_rectification,
    "level_below_city": _need_state(lambda c: c.level != "city", "the case is already handled at city level"),
    "not_suspended": _need_state(lambda c: c.suspended_at is None, "the case is already suspended"),
    "suspended": _need_state(lambda c: c.suspended_at is not None, "the case is not suspended"),
}


# ---------------------------------------------------------------------------------------------- effects


def _run_effect(step: Step, name: str, arg: str) -> None:
    if name in _EFFECTS:
        _EFFECTS[name](step, arg)
    for hook in hooks.effect_hooks.get(name, ()):
        hook(step.actor, step.case, step.row, step.changes, step.data)


def _set(step: Step, name: str, old, new) -> None:
    step.changes[name] = [old, new]


def _sets_assignee(step: Step, _: str) -> None:
    case, assignee = step.case, step.extras.get("assignee")
    new_id = assignee.id if assignee else None
    if new_id != case.assignee_id:
        _set(step, "assignee", username(case.assignee_id), assignee.username if assignee else None)
        case.assignee_id = new_id
    unit = (step.params.get("unit") or "").strip() or None
    if unit != case.unit:
        _set(step, "unit", case.unit, unit)
        case.unit = unit


def _sets_merged_into(step: Step, _: str) -> None:
    case, target = step.case, step.extras["target"]
    _set(step, "merged_into", case.merged_into, target.id)
    case.merged_into = target.id
    unit_of_work.current().event(target, step.actor, "merged_in", data={"case_id": case.id, "number": case.number})


def _raises_level(step: Step, _: str) -> None:
    new_level = HANDLING_UP[step.case.level]
    _set(step, "level", step.case.level, new_level)
    step.case.level = new_level


def _suspends(flag: bool):
    def effect(step: Step, _: str) -> None:
        _set(step, "suspended", not flag, flag)
        step.case.suspended_at = step.actor.now if flag else None
    return effect


def _stamps(column: str, stamp: bool):
    def effect(step: Step, _: str) -> None:
        setattr(step.case, column, step.actor.now if stamp else None)
    return effect


def _ends_stage(step: Step, name: str) -> None:
    ended = deadlines.end_stage(step.case, step.actor.now, only=name)
    if ended is not None:
        step.data.setdefault("stage_outcome", {})[ended.stage] = ended.outcome


def _clock(action: Callable):
    def effect(step: Step, arg: str) -> None:
        action(step.case, step.actor.now, *([arg] if arg else []))
    return effect


_EFFECTS: dict[str, Callable[[Step, str], None]] = {
    "sets_assignee": _sets_assignee,
    "sets_merged_into": _sets_merged_into,
    "raises_level": _raises_level,
    "stamps_suspended": _suspends(True),
    "clears_suspended": _suspends(False),
    "stamps_closed_at": _stamps("closed_at", True),
    "clears_closed_at": _stamps("closed_at", False),
    "stamps_accepted_at": _stamps("accepted_at", True),
    "ends_stage": _ends_stage,
    "starts_stage": _clock(lambda case, now, name: deadlines.start_stage(case, name, now)),
    "relimits_stage": _clock(deadlines.on_limits_changed),
    "pauses_clock": _clock(deadlines.pause),
    "resumes_clock": _clock(deadlines.resume),
    "stamps_hours_to_close": _clock(deadlines.stamp_hours_to_close),
    "clears_hours_to_close": _clock(lambda case, now: setattr(case, "hours_to_close", None)),
}


def unknown_effects() -> set[str]:
    """Effects the workflow names that nothing carries out (a test keeps this empty)."""
    named = {effect.partition(":")[0] for effects in workflow.EFFECTS.values() for effect in effects}
    return named - set(_EFFECTS) - set(hooks.effect_hooks)


# ---------------------------------------------------------------------------------------------- overdue


def escalate_overdue(now: datetime | None = None) -> list[Case]:
    """Escalate every open case whose running stage is overdue by one handling level, once per stage, and
    record why. Safe to run again (cron): a stage already escalated is left alone."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Case, CaseStage).join(CaseStage, and_(CaseStage.case_id == Case.id, CaseStage.ended_at.is_(None)))
        .where(deadlines.overdue_criterion(now), CaseStage.escalated_at.is_(None), Case.suspended_at.is_(None),
               Case.state.in_(OPEN_STATES))
        .order_by(Case.due_at, Case.id).with_for_update(of=CaseStage)).all()
    actor = Actor(user=None, now=now)
    uow = unit_of_work.current()
    done = []
    for case, stage in rows:
        stage.escalated_at = now
        if case.level == "city":
            continue
        new_level = HANDLING_UP[case.level]
        uow.event(case, actor, "escalate", changes={"level": [case.level, new_level]},
                  data={"reason": "overdue", "stage": stage.stage, "due_at": case.due_at.isoformat(),
                        "clock": stage.clock, "overdue_hours": deadlines.overdue_hours(stage, case, now)})
        case.level = new_level
        deadlines.on_limits_changed(case, now)
        done.append(case)
    return done
