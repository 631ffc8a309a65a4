"""The audit log: one row per admin action (who, when, what changed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db
from app.users.models import User


class AdminEvent(db.Model):
    __tablename__ = "admin_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Dotted, stable: "user.create", "user.disable", "category.rename", "calendar.import", "regions.apply"…
    action: Mapped[str] = mapped_column(String(48), index=True)
    target_type: Mapped[str] = mapped_column(String(24))  # "user", "category", "sla_rule", "calendar", "region"
    target_id: Mapped[str | None] = mapped_column(String(64))
    # Whose business it is: the region of what changed (a reviewer sees the events inside their township);
    # None for nationwide rules (categories, time limits, the calendar), which only admins see.
    region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    # For people, in words: "张网格员 停用", "导入花名册 50 人".
    summary: Mapped[str] = mapped_column(String(255), default="")
    # {"field": [before, after], …} or, for imports, counts.
    changes: Mapped[dict] = mapped_column(JSON, default=dict)

    actor: Mapped[User] = relationship(lazy="joined")
