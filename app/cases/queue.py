"""The review queue: one filtered, scoped select of cases, paged by keyset for the screen and streamed
whole for the exports (app/cases/exports.py).

``queue_select`` is the only place that turns the queue's filters into SQL, and it starts from the caller's
scope (``case_criterion``), so a filter can narrow what a user sees but never widen it. Pages are cut by
keyset (the last row's sort value and id, in an opaque cursor), never by OFFSET: page 500 costs what page 1
costs, and a case added or moved between two pages is neither shown twice nor skipped before the cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, String, and_, cast, exists, func, not_, or_, select, type_coerce, union
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BooleanClauseList

from app.auth.scope import case_criterion, region_visible, subtree_criterion
from app.cases.deadlines import light_at, overdue_criterion
from app.cases.models import Case, CaseStage, Conflict
from app.database import utcnow
from app.errors import NotFound, ValidationFailed, language
from app.extensions import db
from app.regions.models import Region
from app.users.models import User

DESCRIPTION_CHARS = 140  # what a queue row shows; the case page has the rest

Reporter = aliased(User, name="reporter")
Assignee = aliased(User, name="assignee")


@dataclass(frozen=True)
class Sort:
    column: object
    descending: bool
    nullable: bool  # nulls sort last


SORTS: dict[str, Sort] = {
    "reported_at": Sort(Case.reported_at, False, False),
    "-reported_at": Sort(Case.reported_at, True, False),
    "due_at": Sort(Case.due_at, False, True),  # closed and suspended cases have none: they come last
    "-updated_at": Sort(Case.updated_at, True, False),
    "number": Sort(Case.number, False, True),
}


def _open_conflicts():
    return (select(func.count(Conflict.id)).where(Conflict.case_id == Case.id, Conflict.status == "open")
            .correlate(Case).scalar_subquery())


def _paused_fraction():
    """For a case whose clock is stopped (suspended: no due_at while a stage runs), the share of its limit
    already used, read from the running stage; NULL for every other case (the CASE skips the lookup)."""
    used = (select(CaseStage.consumed_s / (CaseStage.limit_minutes * 60.0))
            .where(CaseStage.case_id == Case.id, CaseStage.ended_at.is_(None))
            .order_by(CaseStage.started_at.desc()).limit(1).correlate(Case).scalar_subquery())
    return sql_case((and_(Case.stage.is_not(None), Case.due_at.is_(None)), used), else_=None)


COLUMNS = (
    Case.id, Case.number, Case.state, Case.level, Case.category, Case.risk_level, Case.description,
    Case.micro_grid_code, Case.grid_code, Case.village_code, Case.township_code,
    Reporter.username.label("reporter"), Assignee.username.label("assignee"), Case.unit, Case.flags,
    Case.reported_at, Case.updated_at, Case.closed_at, Case.stage, Case.stage_clock, Case.due_at, Case.warn_at,
    Case.version,
    Case.lat, Case.lon, Case.suspended_at,
)


def _flag_criterion(flag: str, dialect: str):
    """flags is a JSON list of plain names (JSONB on PostgreSQL). As text each name stands in double quotes on
    both engines, which is how "any" (a name at all) and SQLite find them; on PostgreSQL one name is JSONB
    containment, the same test as a GIN look-up (ix_cases_flags)."""
    text = cast(Case.flags, String)
    if flag == "any":
        if dialect == "postgresql":  # implied by the LIKE; said so, the planner sees from the column's
            # statistics that few cases have flags (it has none for the LIKE and guesses most have)
            return and_(Case.flags.is_not(None), Case.flags != type_coerce([], JSONB), text.like('%"%'))
        return and_(Case.flags.is_not(None), text.like('%"%'))
    if dialect == "postgresql":
        return type_coerce(Case.flags, JSONB).contains([flag])
    return text.like(f'%"{flag}"%')


# Above this many open conflicts SQLite does better walking the page's index and probing each case than
# looking up every case that has one (as IN, it finds all of them, in every scope branch, then sorts).
CONFLICTS_WALK_FROM = 1000


def _has_conflicts(has_open):
    """Cases with an open conflict. Open conflicts are usually few: as IN, the planner starts from them
    instead of probing every case. On SQLite, which then looks up every such case, in each branch of a
    reviewer's scope, many open conflicts (the bench's 10,000: 140 ms) make the ordered walk with a probe per
    case cheaper (a page of 51 at 1 % density is ~5,000 index steps); PostgreSQL's planner chooses itself."""
    open_ids = select(Conflict.case_id).where(Conflict.status == "open")
    if db.session.get_bind().dialect.name == "sqlite":
        many = db.session.scalar(select(func.count()).select_from(
            open_ids.limit(CONFLICTS_WALK_FROM + 1).subquery())) > CONFLICTS_WALK_FROM
        if many:
            return has_open
    return Case.id.in_(open_ids)


def criteria(user: User, filters: dict, now: datetime) -> list:
    """The WHERE of the queue: the caller's scope first, then ``filters`` (QueueFilterQuery's fields).
    Raises NotFound for a region outside the scope."""
    where = [case_criterion(Case, user)]
    if filters.get("region"):
        region = db.session.get(Region, filters["region"])
        if not region_visible(region, user):
            raise NotFound()
        where.append(subtree_criterion(Case, region))
    if filters.get("state"):
        where.append(Case.state.in_(filters["state"]))
    if filters.get("risk_level"):
        where.append(Case.risk_level.in_(filters["risk_level"]))
    if filters.get("category"):
        where.append(Case.category.in_(filters["category"]))
    if filters.get("level"):
        where.append(Case.level == filters["level"])
    if filters.get("overdue") is not None:
        overdue = overdue_criterion(now)
        where.append(overdue if filters["overdue"] else not_(overdue))
    if filters.get("flag"):
        where.append(_flag_criterion(filters["flag"], db.session.get_bind().dialect.name))
    if filters.get("has_conflicts") is not None:
        has_open = exists().where(Conflict.case_id == Case.id, Conflict.status == "open")
        where.append(_has_conflicts(has_open) if filters["has_conflicts"] else not_(has_open))
    if filters.get("reporter"):
        where.append(Case.reporter_id == select(User.id).where(User.username == filters["reporter"])
                     .scalar_subquery())
    if filters.get("from_"):
        where.append(Case.reported_at >= filters["from_"])
    if filters.get("to"):
        where.append(Case.reported_at < filters["to"])
    if filters.get("q"):
        # ILIKE '%q%' on PostgreSQL, where a rare q (a case number) is a look-up in the trigram indexes
        # ix_cases_description_trgm and ix_cases_number_trgm; lower() LIKE on SQLite, a read of the scope's rows
        q = filters["q"]
        where.append(or_(Case.description.icontains(q, autoescape=True),
                         Case.number.icontains(q, autoescape=True)))
    return where


def _columns(stmt_where: list) -> Select:
    return (select(*COLUMNS, _open_conflicts().label("open_conflicts"), _paused_fraction().label("paused_fraction"))
            .select_from(Case)
            .join(Reporter, Reporter.id == Case.reporter_id)
            .outerjoin(Assignee, Assignee.id == Case.assignee_id)
            .where(*stmt_where))


def queue_select(user: User, filters: dict, now: datetime | None = None) -> Select:
    """The one select behind the queue and the exports: the caller's cases (scope first), narrowed by
    ``filters``, with every column a queue row or a ledger line shows, unordered. Raises NotFound for a
    region outside the scope."""
    return _columns(criteria(user, filters, now or utcnow()))


def ordered(stmt: Select, sort: str, within=None) -> Select:
    """``stmt`` in the order of ``sort`` (ties by id). ``within``: a region column the rows all share; led
    by it, the order is one an ``ix_cases_<level>_…`` index holds, and PostgreSQL walks that index instead
    of the whole table's ``reported_at`` (which it prefers when it misjudges how rare a filter is)."""
    key = SORTS[sort]
    col = key.column
    lead = [] if within is None else [within.desc() if key.descending else within.asc()]
    if key.descending:
        return stmt.order_by(*lead, col.desc(), Case.id.desc())
    return stmt.order_by(*lead, col.asc().nulls_last() if key.nullable else col.asc(), Case.id.asc())


_REGION_COLUMNS = {f"{level}_code" for level in ("city", "township", "village", "grid", "micro_grid")}


def _region_column(criterion):
    """The region column of a ``<level>_code = X`` criterion (a scope branch), else None."""
    left = getattr(criterion, "left", None)
    if getattr(criterion, "operator", None) is operators.eq and getattr(left, "table", None) is Case.__table__ \
            and left.key in _REGION_COLUMNS:
        return left
    return None


# ---------------------------------------------------------------------------------------------- cursors


def _invalid_cursor():
    detail = "The page cursor is not valid; start again from the first page." if language() == "en" \
        else "分页游标无效，请从第一页重新开始。"
    return ValidationFailed("invalid_cursor", detail=detail, errors={"cursor": ["not a cursor of this sort"]})


def _encode_value(value):
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(sort: str, value, case_id: str) -> str:
    raw = json.dumps({"s": sort, "v": _encode_value(value), "i": case_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, str]:
    """The (sort value, id) a cursor holds. Raises ValidationFailed (invalid_cursor)."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None
    if not isinstance(doc, dict) or doc.get("s") != sort or not isinstance(doc.get("i"), str):
        raise _invalid_cursor()
    value = doc.get("v")
    key = SORTS[sort]
    if value is None:
        if not key.nullable:
            raise _invalid_cursor()
    elif key.column in (Case.reported_at, Case.updated_at, Case.due_at):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise _invalid_cursor() from None
        if value.tzinfo is None:
            raise _invalid_cursor()
    elif not isinstance(value, str):
        raise _invalid_cursor()
    return value, doc["i"]


def after(stmt: Select, sort: str, value, case_id: str) -> Select:
    """Rows after (value, id) in the order of ``sort``. Written as ``col <= v AND (col < v OR id < i)`` so
    both engines can range-scan an index on the sort column."""
    key = SORTS[sort]
    col = key.column
    if key.descending:
        return stmt.where(col <= value, or_(col < value, Case.id < case_id))
    if value is None:  # already among the trailing nulls
        return stmt.where(col.is_(None), Case.id > case_id)
    later = and_(col >= value, or_(col > value, Case.id > case_id))
    return stmt.where(or_(later, col.is_(None)) if key.nullable else later)


# ---------------------------------------------------------------------------------------------- rows


def light_of(row, now: datetime) -> str | None:
    """``deadlines.light_at`` from the row's own columns (no query per case)."""
    if row.stage is None:
        return None
    return light_at(now, row.due_at, row.warn_at, row.paused_fraction)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item(row, now: datetime) -> dict:
    """One queue row as the reviewer's list shows it."""
    return {
        "id": row.id, "number": row.number, "state": row.state, "level": row.level, "category": row.category,
        "risk_level": row.risk_level, "description": (row.description or "")[:DESCRIPTION_CHARS],
        "micro_grid_id": row.micro_grid_code, "grid_code": row.grid_code, "village_code": row.village_code,
        "township_code": row.township_code, "reporter": row.reporter, "assignee": row.assignee,
        "flags": row.flags or [], "reported_at": _iso(row.reported_at), "updated_at": _iso(row.updated_at),
        "stage": row.stage, "clock": row.stage_clock, "due_at": _iso(row.due_at), "light": light_of(row, now),
        "suspended": row.suspended_at is not None, "version": row.version, "open_conflicts": row.open_conflicts,
    }


def _page_ids(where: list, sort: str, position, n: int):
    """The ids of the page, picked on the cases table alone; the columns, names and counts are then fetched
    for those rows only, not for every row the sort looked at.

    The scope of a grid worker or reviewer is an OR (their region's subtree, or assigned to them, or
    reported by them), which no index can walk in order; each branch is walked on its own (the region's
    by ``ix_cases_<level>_reported``), cut to ``n``, and the branches' pages are merged."""
    scope, rest = where[0], where[1:]
    branches = list(scope.clauses) if isinstance(scope, BooleanClauseList) and scope.operator is operators.or_ \
        else [scope]
    key = SORTS[sort].column
    pages = []
    for branch in branches:
        stmt = select(Case.id, key).where(branch, *rest)
        if position is not None:
            stmt = after(stmt, sort, *position)
        pages.append(ordered(stmt, sort, within=_region_column(branch)).limit(n).subquery())
    if len(pages) == 1:
        return select(pages[0].c.id)
    merged = union(*(select(p.c.id, p.c[key.key]) for p in pages)).subquery()
    return select(merged.c.id)


def queue_page(user: User, args: dict, now: datetime | None = None) -> tuple[list[dict], str | None]:
    """One page of the caller's queue and the cursor of the next (None on the last page).

    Raises NotFound (region out of scope) and ValidationFailed (invalid_cursor)."""
    now = now or utcnow()
    sort, limit = args.get("sort") or "-reported_at", args.get("limit") or 50
    where = criteria(user, args, now)
    position = decode_cursor(args["cursor"], sort) if args.get("cursor") else None
    stmt = ordered(_columns([Case.id.in_(_page_ids(where, sort, position, limit + 1))]), sort)
    rows = db.session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(sort, getattr(last, SORTS[sort].column.key), last.id)
    return [item(row, now) for row in rows], next_cursor
