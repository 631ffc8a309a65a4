"""The case life cycle as data: (state, action) → next state, who may do it, what it needs.

Beside it, what each action does besides moving the state (``EFFECTS``): app/cases/transitions.py reads
both tables and runs the effects in their order; it does not branch on action names. Services consult
this table; ``GET /api/v1/workflow`` serves it so the PWA shows the right buttons, and
the README prints it. ``next`` is ``None`` where the action keeps the state (escalate, suspend, resume).
Roles: the four user roles, plus ``reporter`` (whoever reported the case) and ``assignee`` (whoever it
was assigned to), both still inside their scope.

  reported ──accept──▶ accepted ──assign──▶ assigned ──start──▶ in_progress ──resolve──▶ resolved
  reported ──return──▶ returned ──resubmit──▶ reported;  reported ──reject──▶ rejected
  reported ──merge──▶ merged;  resolved ──verify_close──▶ closed;  resolved/closed ──reopen──▶ in_progress
"""

from __future__ import annotations

from dataclasses import dataclass

REVIEW = ("reviewer", "admin")
FIELD = ("grid_worker", "reviewer", "admin", "assignee")


@dataclass(frozen=True)
class Transition:
    state: str
    action: str
    next: str | None
    roles: tuple[str, ...]
    needs: tuple[str, ...] = ()

    @property
    def effects(self) -> tuple[str, ...]:
        return EFFECTS.get(self.action, ())

    def to_dict(self) -> dict:
        return {"state": self.state, "action": self.action, "next": self.next or self.state,
                "roles": list(self.roles), "needs": list(self.needs)}


def _rows():
    yield Transition("reported", "accept", "accepted", REVIEW)
    yield Transition("reported", "return", "returned", REVIEW, ("reason",))
    yield Transition("accepted", "return", "returned", REVIEW, ("reason",))
    yield Transition("returned", "resubmit", "reported", ("reporter", "reviewer", "admin"))
    for state in ("reported", "returned", "accepted"):
        yield Transition(state, "reject", "rejected", REVIEW, ("reason",))
        yield Transition(state, "merge", "merged", REVIEW, ("target",))
    for state in ("accepted", "assigned", "in_progress"):
        # assigning again hands the case to someone else (re-交办)
        yield Transition(state, "assign", "assigned", REVIEW, ("assignee_or_unit",))
    yield Transition("assigned", "start", "in_progress", FIELD)
    for state in ("assigned", "in_progress"):
        yield Transition(state, "resolve", "resolved", FIELD, ("rectification_photo_or_note",))
    yield Transition("resolved", "verify_close", "closed", REVIEW)
    yield Transition("resolved", "reopen", "in_progress", REVIEW, ("reason",))
    yield Transition("closed", "reopen", "in_progress", REVIEW, ("reason",))
    for state in ("reported", "accepted", "assigned", "in_progress", "resolved", "returned"):
        yield Transition(state, "escalate", None, ("grid_worker", "reviewer", "admin"), ("level_below_city",))
    for state in ("accepted", "assigned", "in_progress"):
        yield Transition(state, "suspend", None, REVIEW, ("reason", "not_suspended"))
        yield Transition(state, "resume", None, REVIEW, ("suspended",))


# What each action does besides moving the state, in order. ``name:arg`` passes ``arg``. Fields and stamps
# come first, then the clocks (a stage ends only if the action ends the one running: ``ends_stage:accept``),
# then the points (app/stats/points.py).
EFFECTS: dict[str, tuple[str, ...]] = {
    "accept": ("ends_stage:accept", "stamps_accepted_at", "starts_stage:close", "awards_points"),
    "return": ("ends_stage:accept",),
    "resubmit": ("starts_stage:accept",),
    "reject": ("ends_stage:accept", "ends_stage:close", "takes_back_points"),
    "merge": ("sets_merged_into", "ends_stage:accept", "ends_stage:close", "takes_back_points"),
    "assign": ("sets_assignee",),
    "start": (),
    "resolve": (),
    "verify_close": ("stamps_closed_at", "ends_stage:close", "stamps_hours_to_close"),
    "reopen": ("clears_closed_at", "starts_stage:close", "clears_hours_to_close"),
    "escalate": ("raises_level", "relimits_stage"),
    "suspend": ("stamps_suspended", "pauses_clock"),
    "resume": ("clears_suspended", "resumes_clock"),
}


def stages_ended_by(action: str) -> tuple[str, ...]:
    """The stages (app/cases/deadlines.py) an action ends when one of them is running."""
    return tuple(effect.split(":", 1)[1] for effect in EFFECTS.get(action, ()) if effect.startswith("ends_stage:"))


TABLE: dict[tuple[str, str], Transition] = {(t.state, t.action): t for t in _rows()}
ACTIONS = tuple(dict.fromkeys(t.action for t in TABLE.values()))


def find(state: str, action: str) -> Transition | None:
    return TABLE.get((state, action))


def as_list() -> list[dict]:
    return [t.to_dict() for t in TABLE.values()]
