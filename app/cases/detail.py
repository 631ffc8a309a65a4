"""What a case looks like to its readers: the fields a phone keeps offline, and the full page a reviewer
reads (timeline, notes, photos by role, conflicts, linked duplicates)."""

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
    }


def case_page(case: Case, user: User) -> dict:
    """Everything a reviewer needs on one case; who changed what and when is the timeline."""
    events = list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                     .order_by(CaseEvent.version)))
    links = list(db.session.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id)
                                    .order_by(CasePhoto.event_version, CasePhoto.position)))
    notes = list(db.session.scalars(select(CaseNote).where(CaseNote.case_id == case.id)
                                    .order_by(CaseNote.event_version)))
    user_ids = {case.reporter_id, case.assignee_id} | {e.actor_id for e in events} | {n.author_id for n in notes}
    usernames = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(user_ids - {None}))).all())
    missing = set(missing_photos([case.id])[case.id])
    photos = [{"sha256": p.sha256, "role": p.role, "note_id": p.note_id, "flags": p.flags or [],
               "missing": p.sha256 in missing, "added_by": usernames.get(p.added_by),
               "added_at": p.added_at.isoformat()} for p in links]
    page = case_to_dict(case, usernames, [{"sha256": p["sha256"], "role": p["role"]} for p in photos])
    merged_here = db.session.execute(select(Case.id, Case.number).where(Case.merged_into == case.id)).all()
    duplicates = [{"id": cid, "number": number, "relation": "merged_into_this"} for cid, number in merged_here
                  if case_visible(db.session.get(Case, cid), user)]
    for cid in case.duplicate_of or []:
        other = db.session.get(Case, cid)
        if other is not None and case_visible(other, user):
            duplicates.append({"id": other.id, "number": other.number, "relation": "possible_duplicate_of"})
    page.update(
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
        duplicates=duplicates,
        # the running stage: its limit, the clock it counts (natural or working time), deadline, light, time left
        running_stage=deadlines.stage_view(case, utcnow()),
    )
    return page
