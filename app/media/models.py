"""Photos that have arrived, by the sha256 of their bytes (the same bytes are stored once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from app.database import UTCDateTime, utcnow
from app.extensions import db


def phash_quarters(phash: str) -> tuple[int, int, int, int]:
    value = int(phash, 16)
    return tuple((value >> shift) & 0xFFFF for shift in (48, 32, 16, 0))


class Photo(db.Model):
    __tablename__ = "photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(8))
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    exif_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exif_time_naive: Mapped[str | None] = mapped_column(String(32))  # when EXIF gave no offset
    exif_lat: Mapped[float | None] = mapped_column(Float)
    exif_lon: Mapped[float | None] = mapped_column(Float)
    camera: Mapped[str | None] = mapped_column(String(64))
    phash: Mapped[str | None] = mapped_column(String(16), index=True)
    # The phash in four 16-bit quarters: two hashes within 3 bits of each other share at least one
    # quarter (pigeonhole), so near-identical photos are found by four index look-ups, not a scan.
    phash_q0: Mapped[int | None] = mapped_column(index=True)
    phash_q1: Mapped[int | None] = mapped_column(index=True)
    phash_q2: Mapped[int | None] = mapped_column(index=True)
    phash_q3: Mapped[int | None] = mapped_column(index=True)

    def set_phash(self, phash: str | None) -> None:
        self.phash = phash
        quarters = phash_quarters(phash) if phash else (None,) * 4
        self.phash_q0, self.phash_q1, self.phash_q2, self.phash_q3 = quarters
    # The upload was already a clean display copy (an upright, display-sized JPEG with no metadata, as the
    # PWA sends): no display object of its own; the display variant is served from the original's.
    display_is_original: Mapped[bool] = mapped_column(default=False, server_default=false())
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PhotoHolder(db.Model):
    """A user who has shown they hold a photo's bytes: they uploaded them (a PUT of a stored hash still sends
    the body, whose hash is checked). Naming a hash proves nothing, since hashes travel in case JSON, pulls
    and Open311; only this row, or seeing the photo already, lets a user's link attach it to a case."""

    __tablename__ = "photo_holders"

    sha256: Mapped[str] = mapped_column(ForeignKey("photos.sha256"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Upload(db.Model):
    """A resumable (tus) upload in progress; its bytes so far are MEDIA_DIR/tus/<id>.part."""

    __tablename__ = "tus_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
