"""Notes and photo links: append-only. A note id seen before is a no-op; a photo link seen before is
skipped. Whether a link attaches its photo is app/media/links.py's business."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, select

from app.cases import unit_of_work
from app.cases.actions import Actor, Outcome, Refused, require_case_for_op, start
from app.cases.models import Case, CaseNote, CasePhoto
from app.extensions import db
from app.media import links as evidence


def add_note(actor: Actor, case: Case, note: dict, *, default_role: str = "evidence", action: str = "note",
             redirected: bool = False) -> Outcome:
    """Append a note and its photos (append-only: always merges). A note id seen before is a no-op.
    Everything that can refuse the note is checked before its first write.

    Raises Refused (out_of_scope, forbidden).
    """
    user = actor.user
    require_case_for_op(user, case)
    if user.role == "volunteer" and case.reporter_id != user.id:
        raise Refused("forbidden", status=403)
    outcome = start(redirected)
    uow = unit_of_work.current()
    if uow.note_exists(note["id"]):
        return outcome
    version = uow.event(case, actor, action, data={
        "note_id": note["id"], "text": note.get("text", ""), "photos": [p["sha256"] for p in note.get("photos") or []]})
    outcome.flags += append_note(actor, case, note, version, default_role)
    return outcome


def append_note(actor: Actor, case: Case, note: dict, version: int, default_role: str) -> list[str]:
    """The note's row and its photo links, part of the event ``version``; returns the flags the photos
    earned the case."""
    unit_of_work.current().add_note(
        id=note["id"], case_id=case.id, author_id=actor.user.id, text=note.get("text", ""),
        captured_at=note.get("captured_at"), created_at=actor.now, event_version=version)
    return link_photos(case, actor, note.get("photos") or [], default_role, version, note_id=note["id"])


def existing_notes(note_ids: list[str]) -> dict[str, bool]:
    """Which of these note ids are stored already (one query): note id -> stored."""
    if not note_ids:
        return {}
    stored = set(db.session.scalars(select(CaseNote.id).where(CaseNote.id.in_(sorted(set(note_ids))))))
    return {note_id: note_id in stored for note_id in note_ids}


def link_photos(case: Case, actor: Actor, photos: list[dict], default_role: str, version: int,
                note_id: str | None = None) -> list[str]:
    """Link photos by hash (append-only; a link seen before is skipped), attaching those the actor has
    shown to hold (app/media/links.py). Returns the flags the case earned from them."""
    if not photos:
        return []
    uow = unit_of_work.current()
    if case.id in uow.new_cases:
        existing: set = set()
    else:
        existing = {(sha, role) for sha, role in db.session.execute(
            select(CasePhoto.sha256, CasePhoto.role).where(CasePhoto.case_id == case.id))}
    rows = []
    for ref in photos:
        role = ref.get("role") or default_role
        if (ref["sha256"], role) in existing:
            continue
        existing.add((ref["sha256"], role))
        rows.append(uow.add(CasePhoto, case_id=case.id, sha256=ref["sha256"], role=role, note_id=note_id,
                            added_by=actor.user.id, added_at=actor.now, event_version=version,
                            position=len(rows), flags=[], attached=False))
    if not rows:
        return []
    return evidence.attach(case, actor.user, rows, evidence.evidence_for(uow.cache, actor.user))


_missing_photos_query: Select | None = None


def missing_photos(case_ids: list[str]) -> dict[str, list[str]]:
    """Per case, the linked photo hashes not attached yet: their bytes have not come from the phone that
    named them (app/media/links.py)."""
    if not case_ids:
        return {}
    global _missing_photos_query
    if _missing_photos_query is None:  # built once: Core columns, an expanding IN (sync asks on every batch)
        links = CasePhoto.__table__.c
        _missing_photos_query = (
            select(links.case_id, links.sha256)
            .where(links.case_id.in_(bindparam("ids", expanding=True)), links.attached.is_(False))
            .order_by(links.case_id, links.event_version, links.position))
    rows = db.session.execute(_missing_photos_query, {"ids": list(case_ids)}).all()
    out: dict[str, list[str]] = {cid: [] for cid in case_ids}
    for case_id, sha in rows:
        if sha not in out[case_id]:
            out[case_id].append(sha)
    return out
