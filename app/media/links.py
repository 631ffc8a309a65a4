"""What a photo says about the case it is linked to: reused on another case, or taken far from the report
in time or place. Runs when a photo is linked to a case and again when its bytes arrive."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.cases.models import Case, CasePhoto
from app.extensions import db

EXIF_MAX_DISTANCE_M = 500.0
EXIF_MAX_TIME = timedelta(hours=24)
PHASH_MAX_DISTANCE = 6  # of 64 bits: the same scene re-encoded or resized, not merely a similar street


def _flag(case: Case, link: CasePhoto, flag: str) -> None:
    if flag not in (link.flags or []):
        link.flags = sorted(set(link.flags or []) | {flag})
    if flag not in (case.flags or []):
        case.flags = sorted(set(case.flags or []) | {flag})


def check_links(case: Case, links: list[CasePhoto]) -> None:
    """Flag ``photo_reused`` and ``exif_mismatch`` on these links of ``case`` (and on the case)."""
    from app.cases.services import haversine_m
    from app.media.models import Photo
    from app.media.pipeline import hamming

    hashes = sorted({link.sha256 for link in links})
    if not hashes:
        return
    reused = set(db.session.scalars(select(CasePhoto.sha256).where(
        CasePhoto.sha256.in_(hashes), CasePhoto.case_id != case.id)))
    photos = {p.sha256: p for p in db.session.scalars(select(Photo).where(Photo.sha256.in_(hashes)))}
    for link in links:
        if link.sha256 in reused:
            _flag(case, link, "photo_reused")
        photo = photos.get(link.sha256)
        if photo is None:
            continue
        if photo.phash and link.sha256 not in reused:
            near = db.session.execute(
                select(Photo.sha256, Photo.phash).join(CasePhoto, CasePhoto.sha256 == Photo.sha256)
                .where(CasePhoto.case_id != case.id, Photo.phash.is_not(None),
                       Photo.phash.like(photo.phash[:2] + "%"))
                .limit(200)).all()
            if any(hamming(photo.phash, other) <= PHASH_MAX_DISTANCE for _, other in near):
                _flag(case, link, "photo_reused")
        reference_time = case.captured_at or case.reported_at
        if photo.exif_time is not None and reference_time is not None and abs(
                photo.exif_time - reference_time) > EXIF_MAX_TIME:
            _flag(case, link, "exif_mismatch")
        if photo.exif_lat is not None and case.lat is not None and haversine_m(
                photo.exif_lat, photo.exif_lon, case.lat, case.lon) > EXIF_MAX_DISTANCE_M + (case.accuracy_m or 0):
            _flag(case, link, "exif_mismatch")


def photos_linked(case: Case, hashes: list[str]) -> None:
    links = list(db.session.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id,
                                                            CasePhoto.sha256.in_(hashes))))
    check_links(case, links)
