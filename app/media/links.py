"""A photo's links to cases: whether a link attaches the photo to its case, and what an attached photo says
about that case.

A hash is a name, not a key: it travels in case JSON, pulls and Open311's ``media_url``, so naming it in an
op proves nothing. A link attaches its photo (the case then shows it, and whoever sees the case may see the
photo) only when the user who made the link has shown they hold the bytes: they uploaded them
(``PhotoHolder``), or they could see the photo already. Until then the link is one of the case's missing
photos; it attaches the moment that user uploads the same bytes (``possession_shown``).

An attached photo is checked against its case: ``photo_reused`` when it is attached to another case as
well, or near-identical to one that is (perceptual hash); ``exif_mismatch`` when it was taken far from the
report in time or place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.auth.scope import case_criterion, case_visible
from app.cases.models import Case, CasePhoto
from app.database import utcnow
from app.extensions import db
from app.geo.distance import haversine_m
from app.media.models import Photo, PhotoHolder, phash_quarters
from app.media.pipeline import hamming

EXIF_MAX_DISTANCE_M = 500.0
EXIF_MAX_TIME = timedelta(hours=24)
# Of 64 bits: the same photo re-encoded, resized or lightly cropped, not merely a similar street. The
# quarter index in Photo finds every hash within this distance (it must stay below 4).
PHASH_MAX_DISTANCE = 3


@dataclass
class Evidence:
    """What the database says about some photo hashes, for one user, read once per transaction; and the
    links this transaction has attached since (they are not in the database yet)."""

    user_id: int
    photos: dict[str, Photo | None] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # hashes the user has shown to hold
    # hash -> {case id: whether the user sees that case}, for the attached links stored before
    attached: dict[str, dict[str, bool]] = field(default_factory=dict)
    here: list[tuple[str, str, bool]] = field(default_factory=list)  # (hash, case id, visible) attached now

    def load(self, user, hashes) -> None:
        """Read what is not known yet about ``hashes``: two queries at most, none when all are known."""
        new = sorted(set(hashes) - set(self.photos))
        if not new:
            return
        holder = exists().where(PhotoHolder.sha256 == Photo.sha256, PhotoHolder.user_id == user.id)
        stored = {}
        for photo, held in db.session.execute(select(Photo, holder).where(Photo.sha256.in_(new))):
            stored[photo.sha256] = photo
            if held:
                self.held.add(photo.sha256)
        for sha in new:
            self.photos[sha] = stored.get(sha)
            self.attached[sha] = {}
        if stored:
            rows = db.session.execute(
                select(CasePhoto.sha256, CasePhoto.case_id, case_criterion(Case, user))
                .join(Case, Case.id == CasePhoto.case_id)
                .where(CasePhoto.sha256.in_(sorted(stored)), CasePhoto.attached.is_(True)))
            for sha, case_id, visible in rows:
                self.attached[sha][case_id] = bool(visible)

    def shown(self, user, sha: str) -> bool:
        """Whether ``user`` has shown they hold these bytes: uploaded them, or may see the photo already."""
        if self.photos.get(sha) is None:
            return False
        return (user.role == "admin" or sha in self.held or any(self.attached[sha].values())
                or any(visible for h, _, visible in self.here if h == sha))

    def cases_holding(self, sha: str) -> set[str]:
        return set(self.attached.get(sha, {})) | {case_id for h, case_id, _ in self.here if h == sha}


def evidence_for(cache: dict, user) -> Evidence:
    """The transaction's ``Evidence`` for ``user`` (``cache``: the transaction's look-up cache)."""
    key = ("evidence", user.id)
    if key not in cache:
        cache[key] = Evidence(user.id)
    return cache[key]


def attach(case, user, links: list, evidence: Evidence) -> list[str]:
    """Attach those of ``links`` (new links of ``case``, made by ``user``) whose photo the user has shown
    to hold, and flag them; returns the flags the case earned. ``case`` and the links may be ORM objects
    or rows queued for insertion: only their attributes are used."""
    evidence.load(user, [link.sha256 for link in links])
    earned: list[str] = []
    for link in links:
        if not evidence.shown(user, link.sha256):
            continue
        link.attached = True
        photo = evidence.photos[link.sha256]
        reused = bool(evidence.cases_holding(link.sha256) - {case.id})
        # (a new case is the reporter's: a row queued for insertion has no assignee yet to look at)
        evidence.here.append((link.sha256, case.id, case.reporter_id == user.id or case_visible(case, user)))
        flags = []
        if reused or (photo.phash and _near_duplicate_elsewhere(photo, case)):
            flags.append("photo_reused")
        if _far_from_report(photo, case):
            flags.append("exif_mismatch")
        for flag in flags:
            _flag(case, link, flag)
            if flag not in earned:
                earned.append(flag)
    return earned


def _flag(case, link, flag: str) -> None:
    if flag not in (link.flags or []):
        link.flags = sorted(set(link.flags or []) | {flag})
    if flag not in (case.flags or []):
        case.flags = sorted(set(case.flags or []) | {flag})


def _far_from_report(photo: Photo, case) -> bool:
    reference_time = case.captured_at or case.reported_at
    if photo.exif_time is not None and reference_time is not None and abs(
            photo.exif_time - reference_time) > EXIF_MAX_TIME:
        return True
    return photo.exif_lat is not None and case.lat is not None and haversine_m(
        photo.exif_lat, photo.exif_lon, case.lat, case.lon) > EXIF_MAX_DISTANCE_M + (case.accuracy_m or 0)


def _near_duplicate_elsewhere(photo: Photo, case) -> bool:
    """Another photo within PHASH_MAX_DISTANCE bits, attached to another case (found by the quarter index)."""
    q = phash_quarters(photo.phash)
    candidates = db.session.execute(
        select(Photo.phash).join(CasePhoto, CasePhoto.sha256 == Photo.sha256)
        .where(CasePhoto.case_id != case.id, CasePhoto.attached.is_(True), Photo.sha256 != photo.sha256,
               or_(Photo.phash_q0 == q[0], Photo.phash_q1 == q[1], Photo.phash_q2 == q[2], Photo.phash_q3 == q[3]))
        .limit(500)).scalars()
    return any(hamming(photo.phash, other) <= PHASH_MAX_DISTANCE for other in candidates)


# ---------------------------------------------------------------------------------------------- uploads


def record_holder(sha256: str, user) -> None:
    """``user`` has sent these bytes (their hash checked): one statement, a no-op when recorded before."""
    dialect = db.session.get_bind().dialect.name
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(PhotoHolder.__table__)
    db.session.execute(upsert.values(sha256=sha256, user_id=user.id, shown_at=utcnow())
                       .on_conflict_do_nothing(index_elements=["sha256", "user_id"]))


def possession_shown(sha256: str, user, cache: dict) -> list:
    """``user`` has just sent these bytes: record it and attach the links they made to this photo that
    were waiting for it. Returns the cases whose links attached (the caller marks them changed)."""
    record_holder(sha256, user)
    waiting = list(db.session.scalars(select(CasePhoto).where(
        CasePhoto.sha256 == sha256, CasePhoto.added_by == user.id, CasePhoto.attached.is_(False))
        .order_by(CasePhoto.added_at, CasePhoto.case_id)))
    if not waiting:
        return []
    evidence = evidence_for(cache, user)
    evidence.photos.pop(sha256, None)  # read again: the holder row is new
    evidence.held.discard(sha256)
    by_case: dict[str, list] = {}
    for link in waiting:
        by_case.setdefault(link.case_id, []).append(link)
    cases = []
    for case_id, links in by_case.items():
        case = db.session.get(Case, case_id)
        if case is None:
            continue
        attach(case, user, links, evidence)
        if any(link.attached for link in links):
            cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------- reads


def can_see(sha256: str, user) -> bool:
    """Whether ``user`` may see this (stored) photo: they sent its bytes, or see a case it is attached to."""
    if user.role == "admin":
        return True
    held = db.session.scalar(select(PhotoHolder.user_id).where(
        PhotoHolder.sha256 == sha256, PhotoHolder.user_id == user.id))
    if held is not None:
        return True
    return db.session.scalar(
        select(CasePhoto.sha256).join(Case, Case.id == CasePhoto.case_id)
        .where(CasePhoto.sha256 == sha256, CasePhoto.attached.is_(True), case_criterion(Case, user))
        .limit(1)) is not None


def not_shown(hashes: list[str], user) -> list[str]:
    """Which of ``hashes`` ``user`` has not shown to hold, in the order given: what their phone should
    upload. A hash they hold but linked before it counted (two requests crossing) is asked for again, and
    its upload attaches the waiting links."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return []
    evidence = Evidence(user.id)
    evidence.load(user, wanted)
    waiting = set(db.session.scalars(select(CasePhoto.sha256).where(
        CasePhoto.sha256.in_(wanted), CasePhoto.added_by == user.id, CasePhoto.attached.is_(False)).distinct()))
    return [h for h in wanted if h in waiting or not evidence.shown(user, h)]

