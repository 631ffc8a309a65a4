"""What a photo says about the case it is linked to: reused on another case, or taken far from the report
in time or place. Runs when a photo is linked to a case and again when its bytes arrive."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.cases.models import Case, CasePhoto
from app.extensions import db

EXIF_MAX_DISTANCE_M = 500.0
EXIF_MAX_TIME = timedelta(hours=24)
# Of 64 bits: the same photo re-encoded, resized or lightly cropped, not merely a similar street. The
# quarter index in Photo finds every hash within this distance (it must stay below 4).
PHASH_MAX_DISTANCE = 3


def _flag(case: Case, link: CasePhoto, flag: str) -> None:
    if flag not in (link.flags or []):
        link.flags = sorted(set(link.flags or []) | {flag})
    if flag not in (case.flags or []):
        case.flags = sorted(set(case.flags or []) | {flag})


def check_links(case: Case, links: list[CasePhoto]) -> None:
    """Flag ``photo_reused`` and ``exif_mismatch`` on these links of ``case`` (and on the case)."""
    check_links_bulk([(case, links)])


def check_links_bulk(pairs: list[tuple[Case, list[CasePhoto]]]) -> None:
    """``check_links`` for many cases at once (a sync batch): two queries for the lot, and links made in
    the same transaction count as well (they are not in the database yet)."""
    from app.cases.services import haversine_m
    from app.media.models import Photo

    hashes = sorted({link.sha256 for _, links in pairs for link in links})
    if not hashes:
        return
    # Cases already holding each hash; links of this transaction join in the order they were made, so
    # the later of two cases sharing a photo is the one flagged.
    cases_by_hash: dict[str, set[str]] = {}
    for sha, case_id in db.session.execute(select(CasePhoto.sha256, CasePhoto.case_id)
                                           .where(CasePhoto.sha256.in_(hashes))):
        cases_by_hash.setdefault(sha, set()).add(case_id)
    photos = {p.sha256: p for p in db.session.scalars(select(Photo).where(Photo.sha256.in_(hashes)))}
    for case, links in pairs:
        for link in links:
            holders = cases_by_hash.setdefault(link.sha256, set())
            reused = bool(holders - {case.id})
            holders.add(case.id)
            if reused:
                _flag(case, link, "photo_reused")
            photo = photos.get(link.sha256)
            if photo is None:
                continue
            if photo.phash and not reused and _near_duplicate_elsewhere(photo, case):
                _flag(case, link, "photo_reused")
            reference_time = case.captured_at or case.reported_at
            if photo.exif_time is not None and reference_time is not None and abs(
                    photo.exif_time - reference_time) > EXIF_MAX_TIME:
                _flag(case, link, "exif_mismatch")
            if photo.exif_lat is not None and case.lat is not None and haversine_m(
                    photo.exif_lat, photo.exif_lon, case.lat, case.lon) > EXIF_MAX_DISTANCE_M + (case.accuracy_m or 0):
                _flag(case, link, "exif_mismatch")


def _near_duplicate_elsewhere(photo, case: Case) -> bool:
    """Another photo within PHASH_MAX_DISTANCE bits, linked to another case (found by the quarter index)."""
    from sqlalchemy import or_

    from app.media.models import Photo, phash_quarters
    from app.media.pipeline import hamming

    q = phash_quarters(photo.phash)
    candidates = db.session.execute(
        select(Photo.phash).join(CasePhoto, CasePhoto.sha256 == Photo.sha256)
        .where(CasePhoto.case_id != case.id, Photo.sha256 != photo.sha256,
               or_(Photo.phash_q0 == q[0], Photo.phash_q1 == q[1], Photo.phash_q2 == q[2], Photo.phash_q3 == q[3]))
        .limit(500)).scalars()
    return any(hamming(photo.phash, other) <= PHASH_MAX_DISTANCE for other in candidates)
