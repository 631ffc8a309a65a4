"""Login sessions: one per (user, device) login, carrying the refresh-token chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db
from app.users.models import User


class AuthSession(db.Model):
    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    # The one refresh token of this chain that may still be used; any older one is a stolen copy.
    refresh_jti: Mapped[str] = mapped_column(String(36), unique=True)
    refresh_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")



class ActivationCode(db.Model):
    """A one-time code that lets a new (or reset) account set its own password on first login.

    Only a keyed hash is stored (HMAC-SHA256 with the app secret): a code is random and short-lived, so a
    fast hash is enough, and a county's roster of thousands imports without an Argon2 run per row."""

    __tablename__ = "activation_codes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
