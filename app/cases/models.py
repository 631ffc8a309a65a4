"""Cases and their append-only event log; notes, photo links, conflicts, categories."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db

RISK_LEVELS = ("red", "yellow", "blue")
RISK_NAMES_ZH = {"red": "红", "yellow": "黄", "blue": "蓝"}
HANDLING_LEVELS = ("grid", "village", "township", "city")
STATES = ("reported", "accepted", "assigned", "in_progress", "resolved", "closed", "returned", "rejected",
          "merged")
OPEN_STATES = ("reported", "accepted", "assigned", "in_progress", "resolved", "returned")
PHOTO_ROLES = ("evidence", "rectification")
# Fields a case.update may change; state, level, assignee and deadlines move only through transitions.
EDITABLE_FIELDS = ("category", "risk_level", "description", "location", "micro_grid_id")

# Storage parameters of the GIN indexes on cases (PostgreSQL): a pending list of at most 256 kB.
GIN_WITH = {"gin_pending_list_limit": 256}

# Cells of about 100 m (0.001°) index cases for the "possible duplicate within 50 m" check.
CELL_DEG = 0.001


def cell_of(lat: float, lon: float) -> tuple[int, int]:
    return int(lat // CELL_DEG), int(lon // CELL_DEG)


class Category(db.Model):
    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    # Roles that may report it (volunteers report fewer kinds than grid workers).
    roles: Mapped[list] = mapped_column(JSON, default=list)
    sort: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def to_dict(self) -> dict:
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en, "roles": self.roles}


# (index name part, column): see Case.__table_args__
SCOPE_SEQ_INDEXES = (("reporter", "reporter_id"), ("assignee", "assignee_id"), ("grid", "grid_code"),
                     ("village", "village_code"), ("township", "township_code"), ("city", "city_code"))


class Case(db.Model):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the client's report UUID
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    category: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    risk_level: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    level: Mapped[str] = mapped_column(String(16), default="grid")  # handling level
    handled_on_spot: Mapped[bool] = mapped_column(Boolean, default=False)
    # 挂起: the clock stops while suspended (a flag, not a state: the case resumes where it was).
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reporter_device_id: Mapped[str | None] = mapped_column(String(64))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unit: Mapped[str | None] = mapped_column(String(100))
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("cases.id"), index=True)

    # Where: the micro-grid and its ancestors (scope and figures by region are one equality each).
    micro_grid_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(32))
    village_code: Mapped[str | None] = mapped_column(String(32))
    township_code: Mapped[str | None] = mapped_column(String(32))
    city_code: Mapped[str | None] = mapped_column(String(32))
    lat: Mapped[float | None] = mapped_column(Float)  # WGS-84
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    location_original: Mapped[dict | None] = mapped_column(JSON)  # as sent, with its crs
    cell_lat: Mapped[int | None] = mapped_column(Integer)
    cell_lon: Mapped[int | None] = mapped_column(Integer)

    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # device clock
    captured_at_raw: Mapped[str | None] = mapped_column(String(40))  # as sent, with its offset
    clock_skew_s: Mapped[float | None] = mapped_column(Float)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # server clock
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Hours from report to close-out in natural time (a clock that never stops: how long the public waited),
    # frozen at verify_close (median and p90 in the figures).
    hours_to_close: Mapped[float | None] = mapped_column(Float)

    # The running stage's clock (see app/cases/deadlines.py): due_at passes → overdue; warn_at → yellow;
    # stage_clock is what its limit counts (natural or working time).
    stage: Mapped[str | None] = mapped_column(String(16))
    stage_clock: Mapped[str | None] = mapped_column(String(8))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # JSONB on PostgreSQL so that the queue's flag filter is a GIN look-up (``flags @> '["name"]'``); the value
    # is the same JSON list of plain names on both engines.
    flags: Mapped[list] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=list)
    duplicate_of: Mapped[list] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(default=1)
    # Position in the global change order, for the phones' pull (stamped in commit order).
    change_seq: Mapped[int] = mapped_column(Integer, default=0, index=True)

    __table_args__ = (
        Index("ix_cases_dup", "category", "cell_lat", "cell_lon", "reported_at"),
        # Each part of a user's scope with its newest change last: the open app's "anything new?" (its ETag,
        # app/cases/watch.py) is one step down each; their first column serves every look-up by that column.
        *(Index(f"ix_cases_{name}_seq", column, "change_seq") for name, column in SCOPE_SEQ_INDEXES),
        # The review queue (app/cases/queue.py): a reviewer's page in the queue's usual orders is an index walk
        # within their township or village, not a sort of its tens of thousands of cases.
        Index("ix_cases_township_reported", "township_code", "reported_at", "id"),
        Index("ix_cases_township_due", "township_code", "due_at", "id"),
        Index("ix_cases_township_updated", "township_code", "updated_at", "id"),
        Index("ix_cases_township_number", "township_code", "number"),
        Index("ix_cases_village_reported", "village_code", "reported_at", "id"),
        Index("ix_cases_updated", "updated_at", "id"),
        Index("ix_cases_state_reported", "state", "reported_at", "id"),  # city-wide views by state
        # Figures over cases closed in a period (close-out, grid resolution, hours to close).
        Index("ix_cases_state_closed", "state", "closed_at"),
        Index("ix_cases_township_closed", "township_code", "closed_at"),
        # PostgreSQL only: the queue's rare filters as index look-ups instead of a read of a township's rows:
        # its text search (ILIKE '%…%') through trigrams (pg_trgm, see PG_CASES_BEFORE_CREATE below), its flag
        # filter through JSONB containment. New entries wait in a pending list that every search reads whole;
        # 256 kB instead of the default 4 MB keeps that short (a full 4 MB list doubled a number search) at no
        # measurable cost to writes (fastupdate off instead would add ~45 % to each case update).
        Index("ix_cases_description_trgm", "description", postgresql_using="gin",
              postgresql_ops={"description": "gin_trgm_ops"}, postgresql_with=GIN_WITH).ddl_if(dialect="postgresql"),
        Index("ix_cases_number_trgm", "number", postgresql_using="gin",
              postgresql_ops={"number": "gin_trgm_ops"}, postgresql_with=GIN_WITH).ddl_if(dialect="postgresql"),
        Index("ix_cases_flags", "flags", postgresql_using="gin",
              postgresql_ops={"flags": "jsonb_path_ops"}, postgresql_with=GIN_WITH).ddl_if(dialect="postgresql"),
    )

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def field_value(self, name: str):
        """The value of an editable field as the merge compares it."""
        if name == "category":
            return self.category
        if name == "risk_level":
            return self.risk_level
        if name == "description":
            return self.description
        if name == "micro_grid_id":
            return self.micro_grid_code
        if name == "location":
            if self.lat is None:
                return None
            return {"lat": self.lat, "lon": self.lon, "accuracy_m": self.accuracy_m}
        raise KeyError(name)


# PostgreSQL DDL that Index() cannot say; create_all runs it through the events below, migrations call it as is.
# - the trigram operator classes of ix_cases_*_trgm: pg_trgm is in PostgreSQL's contrib (postgresql-15 on Debian)
#   and is a trusted extension, so the owner of the database may create it, no superuser needed;
# - the region codes determine each other (a village lies in one township): told so, the planner no longer
#   multiplies the selectivities of ``township = T AND village = V`` into a few hundred cases where there are
#   ten thousand, and walks ix_cases_village_reported for a village's page instead of sorting the village.
PG_CASES_BEFORE_CREATE = ("CREATE EXTENSION IF NOT EXISTS pg_trgm",)
PG_CASES_AFTER_CREATE = (
    ("CREATE STATISTICS IF NOT EXISTS st_cases_regions (dependencies) "
     "ON city_code, township_code, village_code, grid_code, micro_grid_code FROM cases"),
)
for _sql in PG_CASES_BEFORE_CREATE:
    event.listen(Case.__table__, "before_create", DDL(_sql).execute_if(dialect="postgresql"))
for _sql in PG_CASES_AFTER_CREATE:
    event.listen(Case.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))


class CaseEvent(db.Model):
    """One change to a case: who, when, from which device and op, which fields from what to what."""

    __tablename__ = "case_events"

    # The key is the case and the version: client-side values, so a batch's events go in one INSERT
    # (an autoincrement key would make SQLite insert them one by one to learn each id).
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[str | None] = mapped_column(String(64))
    op_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    client_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {field: [old, new]}
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    # anything else worth keeping: note id, photos, reason, conflicts, flags
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="CaseEvent.case_id", cascade="")


class CaseNote(db.Model):
    __tablename__ = "case_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the client's note UUID
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_version: Mapped[int]

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="CaseNote.case_id", cascade="")


class CasePhoto(db.Model):
    """A photo (by the sha256 of its bytes) linked to a case; the bytes may not have arrived yet."""

    __tablename__ = "case_photos"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Order within the event that linked it (the phone's order of its photos).
    position: Mapped[int] = mapped_column(default=0)
    note_id: Mapped[str | None] = mapped_column(String(36))
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_version: Mapped[int]
    flags: Mapped[list] = mapped_column(JSON, default=list)
    # The photo counts as this case's (shown with it, visible through it) only once the user who linked it
    # has shown they hold its bytes (app/media/links.py); until then it is one of the case's missing photos.
    attached: Mapped[bool] = mapped_column(default=False, server_default=false())

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="CasePhoto.case_id", cascade="")


class Conflict(db.Model):
    """A field both the server and a device changed differently since the device's base version."""

    __tablename__ = "conflicts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    field: Mapped[str] = mapped_column(String(32))
    base: Mapped[object | None] = mapped_column(JSON)
    server: Mapped[object | None] = mapped_column(JSON)
    client: Mapped[object | None] = mapped_column(JSON)
    op_id: Mapped[str | None] = mapped_column(String(36))
    device_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    base_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_value: Mapped[object | None] = mapped_column(JSON)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="Conflict.case_id", cascade="")


class CaseStage(db.Model):
    """One timed stage of a case (accept, close): its limit and the clock it counts, the time it used on that
    clock, its outcome."""

    __tablename__ = "case_stages"

    # One stage of one case starts once at a given instant (a reopened case starts a new close stage later).
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    limit_minutes: Mapped[int]
    # natural | working (app/cases/clock.py), taken from the rule with the limit. The server default only
    # filled the rows that were there before clocks (the migration then set red cases' to natural).
    clock: Mapped[str] = mapped_column(String(8), server_default="working")
    # Seconds of that clock used before the current running period (suspension stops the clock).
    consumed_s: Mapped[float] = mapped_column(Float, default=0.0)
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # on_time | overdue, frozen at the end
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="CaseStage.case_id", cascade="")


class CalendarDay(db.Model):
    """A day that breaks the Monday-Friday rule: a holiday (放假) or a make-up workday (调休上班)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(64), default="")


class SlaRule(db.Model):
    """A time limit for a stage by risk colour, optionally narrowed to a category and a handling level, and
    the clock it counts: ``natural`` (never stops) or ``working`` (office hours on working days)."""

    __tablename__ = "sla_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    stage: Mapped[str] = mapped_column(String(16))
    risk_level: Mapped[str] = mapped_column(String(8))
    category: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    level: Mapped[str | None] = mapped_column(String(16))
    limit_minutes: Mapped[int]
    # natural | working; the server default as on case_stages (red rules were set to natural).
    clock: Mapped[str] = mapped_column(String(8), server_default="working")

    __table_args__ = (UniqueConstraint("stage", "risk_level", "category", "level", name="uq_sla_rules_key"),)


class PointsEntry(db.Model):
    """Volunteer points (积分制): earned when a report is confirmed, taken back if it is later merged or
    rejected. A ledger, so every figure is a sum and every change has a reason."""

    __tablename__ = "points_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CaseScopeExit(db.Model):
    """A case left a region (moved to another micro-grid): phones that held it get a tombstone."""

    __tablename__ = "case_scope_exits"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    change_seq: Mapped[int] = mapped_column(Integer, default=0, index=True)
    micro_grid_code: Mapped[str] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    village_code: Mapped[str | None] = mapped_column(String(32))
    township_code: Mapped[str | None] = mapped_column(String(32))
    city_code: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # For the unit of work only: a case is inserted before the rows that point at it, in one flush.
    case: Mapped[Case] = relationship(lazy="raise_on_sql", foreign_keys="CaseScopeExit.case_id", cascade="")


class Counter(db.Model):
    """Named counters (case numbers per prefix and year; the change sequence), bumped under a row lock."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
