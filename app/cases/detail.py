"""What a case looks like to its readers: the fields a phone keeps offline, and the full page every reader
of the case sees (timeline, notes, photos by role, conflicts for reviewers, linked duplicates, the running
stage's deadline, why it was returned and what changed since, how it ended)."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.scope import case_visible
from app.cases import deadlines
from app.cases.conflicts import list_conflicts
from app.cases.models import Case, CaseEvent, CaseNote, CasePhoto
from app.cases.notes import missing_photos
from app.database import utcnow
from app.extensions import db
from app.users.models import User


def case_to_dict(case: Case, usernames: dict[int, str], photos: list[dict]) -> dict:
    """The case as a phone stores it offline."""
    return {
        "id": case.id, "number": case.number, "state": case.state, "level": case.level,
        "category": case.category, "risk_level": case.risk_level, "description": case.description,
        "micro_grid_id": case.micro_grid_code, "grid_id": case.grid_code,
        "location": case.field_value("location"), "location_original": case.location_original,
        "handled_on_spot": case.handled_on_spot, "suspended": case.suspended_at is not None,
        "reporter": usernames.get(case.reporter_id), "assignee": usernames.get(case.assignee_id),
        "unit": case.unit, "merged_into": case.merged_into, "flags": case.flags or [],
        "duplicate_of": case.duplicate_of or [], "version": case.version,
        "captured_at": case.captured_at.isoformat() if case.captured_at else None,
        "reported_at": case.reported_at.isoformat(), "updated_at": case.updated_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "photos": photos,
        # the running stage's deadline: the phone draws the light from these offline (warn_at → yellow)
        "stage": case.stage, "clock": case.stage_clock,
        "due_at": case.due_at.isoformat() if case.due_at else None,
        "warn_at": case.warn_at.isoformat() if case.warn_at else None,
        # what the reporter is asked to add (one look-up, for returned cases only)
        "return_reason": return_reason(case.id) if case.state == "returned" else None,
    }


def latest_return(newest_first) -> dict | None:
    """The latest return (退回补充) among events given newest first: its reason, version, time and actor;
    None when there is none."""
    found = next((e for e in newest_first if e.action == "transition" and (e.data or {}).get("action") == "return"),
                 None)
    if found is None:
        return None
    return {"reason": found.data.get("reason"), "version": found.version, "at": found.at.isoformat(),
            "actor_id": found.actor_id}


def return_reason(case_id: str) -> str | None:
    """Why a case was last returned (a walk back through its transitions, newest first)."""
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.action == "transition")
                                .order_by(CaseEvent.version.desc()))
    back = latest_return(events)
    return back["reason"] if back else None


def changed_since_return(events: list[CaseEvent], notes: list[CaseNote], links: list[CasePhoto]) -> dict | None:
    """What the reporter changed after the latest return, read from the event log: each field from its value
    at the return to its value now, the notes and the photos added. None when the case was never returned."""
    back = latest_return(reversed(events))
    if back is None:
        return None
    since = back["version"]
    fields: dict[str, list] = {}
    for event in events:
        if event.version <= since or event.action not in ("update", "conflict_resolved"):
            continue
        for name, (old, new) in (event.changes or {}).items():
            fields[name] = [fields[name][0] if name in fields else old, new]
    resubmitted = next((e for e in events if e.version > since and e.action == "transition"
                        and e.data.get("action") == "resubmit"), None)
    return {"returned_version": since, "reason": back["reason"], "returned_at": back["at"],
            "resubmitted_at": resubmitted.at.isoformat() if resubmitted else None,
            "fields": {k: v for k, v in fields.items() if v[0] != v[1]},
            "notes": [{"id": n.id, "text": n.text} for n in notes if n.event_version > since],
            "photos": [{"sha256": p.sha256, "role": p.role} for p in links if p.event_version > since]}


def resolution(events: list[CaseEvent], notes: list[CaseNote], links: list[CasePhoto]) -> dict | None:
    """How the case ended, for the reporter: the last resolve with its note and after-photos, and the
    close-out (or rejection, with its reason). None while nothing of that happened."""
    ends = [e for e in events if e.action == "transition" and e.data.get("action") in ("resolve", "verify_close", "reject")]
    if not ends:
        return None
    resolved = next((e for e in reversed(ends) if e.data["action"] == "resolve"), None)
    last = ends[-1]
    note = next((n for n in notes if resolved is not None and n.event_version == resolved.version), None)
    return {"action": last.data["action"], "at": last.at.isoformat(), "reason": last.data.get("reason"),
            "resolved_at": resolved.at.isoformat() if resolved else None,
            "note": note.text if note else None,
            "photos": [p.sha256 for p in links if p.role == "rectification"]}


def _history(case: Case) -> tuple[list[CaseEvent], list[CasePhoto], list[CaseNote]]:
    """The case's events, photo links and notes, in their order, one query each."""
    events = list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                     .order_by(CaseEvent.version)))
    links = list(db.session.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id)
                                    .order_by(CasePhoto.event_version, CasePhoto.position)))
    notes = list(db.session.scalars(select(CaseNote).where(CaseNote.case_id == case.id)
                                    .order_by(CaseNote.event_version)))
    return events, links, notes


def _duplicates(case: Case, user: User) -> list[dict]:
    """Cases merged into this one and those it may duplicate, as far as the reader may see them."""
    merged_here = db.session.execute(select(Case.id, Case.number).where(Case.merged_into == case.id)).all()
    found = [{"id": cid, "number": number, "relation": "merged_into_this"} for cid, number in merged_here
             if case_visible(db.session.get(Case, cid), user)]
    for cid in case.duplicate_of or []:
        other = db.session.get(Case, cid)
        if other is not None and case_visible(other, user):
            found.append({"id": other.id, "number": other.number, "relation": "possible_duplicate_of"})
    return found


def _stage_fields(stage: dict | None) -> dict:
    """The running stage at the top, as DESIGN.md names it: which stage, its deadline, light, time left, clock."""
    keys = ("stage", "clock", "due_at", "light", "left_minutes")
    return {key: stage[key] if stage else None for key in keys}


def case_page(case: Case, user: User) -> dict:
    """Everything a reader may see of one case; who changed what and when is the timeline."""
    events, links, notes = _history(case)
    user_ids = {case.reporter_id, case.assignee_id} | {e.actor_id for e in events} | {n.author_id for n in notes}
    people = db.session.execute(select(User.id, User.username, User.display_name)
                                .where(User.id.in_(user_ids - {None}))).all()
    usernames = {p.id: p.username for p in people}
    missing = set(missing_photos([case.id])[case.id])
    photos = [{"sha256": p.sha256, "role": p.role, "note_id": p.note_id, "flags": p.flags or [],
               "missing": p.sha256 in missing, "added_by": usernames.get(p.added_by),
               "added_at": p.added_at.isoformat()} for p in links]
    page = case_to_dict(case, usernames, [{"sha256": p["sha256"], "role": p["role"]} for p in photos])
    stage = deadlines.stage_view(case, utcnow())
    back = latest_return(reversed(events))
    if back is not None:
        back["actor"] = usernames.get(back.pop("actor_id"))
    page.update(
        # display names for every username on the page: people are shown by name, never by login
        display_names={p.username: p.display_name or p.username for p in people},
        **_stage_fields(stage),
        returned=back, changed_since_return=changed_since_return(events, notes, links),
        resolution=resolution(events, notes, links),
        missing_photos=sorted(missing),
        photos_by_role={role: [p for p in photos if p["role"] == role] for role in ("evidence", "rectification")},
        notes=[{"id": n.id, "text": n.text, "author": usernames.get(n.author_id), "version": n.event_version,
                "captured_at": n.captured_at.isoformat() if n.captured_at else None,
                "created_at": n.created_at.isoformat()} for n in notes],
        timeline=[{"version": e.version, "action": e.action, "actor": usernames.get(e.actor_id),
                   "device_id": e.device_id, "op_id": e.op_id, "at": e.at.isoformat(),
                   "client_time": e.client_time.isoformat() if e.client_time else None,
                   "changes": e.changes, "data": e.data} for e in events],
        conflicts=list_conflicts(user, "all", case.id, 1000) if user.role in ("reviewer", "admin") else [],
        duplicates=_duplicates(case, user),
        # the running stage: its limit, the clock it counts (natural or working time), deadline, light, time left
        running_stage=stage,
    )
    return page
