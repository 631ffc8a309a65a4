"""Domain actions on cases: create from a report, merge an edit, append a note, move through the workflow,
resolve a conflict. Every change is an append-only event; ``version`` is the number of the last one.

These functions neither commit nor catch: the caller (a sync batch, an online route) owns the
transaction and calls ``finish_changes()`` just before committing, which numbers new cases, stamps
the change order the phones pull by and writes the rows a sync batch queued (``create_case(rows=True)``,
``update_case(as_row=True)``: plain INSERTs, one per table, no ORM objects).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.auth.scope import case_visible, in_subtree
from app.cases import deadlines, workflow
from app.cases.hooks import transition_hooks
from app.cases.models import (
    OPEN_STATES, Case, CaseEvent, CaseNote, CasePhoto, CaseScopeExit, CaseStage, Category, Conflict, Counter,
    cell_of,
)
from app.database import insert_many, utcnow
from app.cases.deadlines import CHINA
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import db
from app.geo.crs import to_wgs84
from app.geo.distance import haversine_m
from app.media import links as evidence
from app.regions.models import LEVELS, Region
from app.regions.hooks import region_moved_hooks
from app.regions.services import micro_grid_index
from app.users.models import User

DUPLICATE_RADIUS_M = 50.0
DUPLICATE_WINDOW = timedelta(hours=72)
HANDLING_UP = {"grid": "village", "village": "township", "township": "city"}


class Refused(DomainError):
    """An op that can never succeed as sent; the sync answers ``rejected`` with this code."""

    status = 422
    code = "validation_failed"


@dataclass
class Actor:
    """Who does something, from where, and when (server clock; the device's is kept beside it)."""

    user: User | None  # None: the system (scheduled commands)
    device_id: str | None = None
    op_id: str | None = None
    client_time: datetime | None = None
    now: datetime = field(default_factory=utcnow)


@dataclass
class Outcome:
    status: str = "applied"  # applied | conflict
    flags: list[str] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    duplicate_of: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- helpers


def _round(x: float | None, places: int = 7):
    return None if x is None else round(float(x), places)


class Changes:
    """What the current transaction changed, and look-ups it may reuse: kept on the session until
    ``finish_changes``. Holding the cases strongly also keeps them in the identity map (it only holds
    unmodified objects weakly), so finishing does not read them back."""

    def __init__(self):
        self.touched: dict[str, Case] = {}
        self.new_cases: dict[str, Case] = {}
        # Filled by a sync batch up front: report ids that exist already (None: ask the database).
        self.existing_ids: set[str] | None = None
        self.categories: dict[str, Category | None] = {}
        self.scope_exits: list[CaseScopeExit] = []
        self.cache: dict = {}  # calendar, SLA rules: read once per transaction
        # Open cases around a sync batch's reports, read in one query (see read_neighbours).
        self.neighbours: dict[tuple, list] | None = None  # (category, cell_lat, cell_lon) -> cases
        self.neighbour_places: frozenset = frozenset()  # (category, lat, lon) whose 50 m it covers
        self.new_by_cell: dict[tuple, list] = {}
        self.regions: dict[str, Region | None] = {}
        # Rows queued by ``create_case(..., rows=True)`` (table name -> rows), written with one Core INSERT
        # per table by ``finish_changes`` or ``flush_rows``: no ORM objects, no unit of work.
        self.rows: dict[str, list[SimpleNamespace]] = {}

    def mark(self) -> tuple:
        """A point to come back to when the savepoint of one op is rolled back."""
        return (set(self.touched), set(self.new_cases), len(self.scope_exits),
                {name: len(rows) for name, rows in self.rows.items()})

    def restore(self, mark: tuple) -> None:
        touched, new_cases, exits, rows = mark
        self.rows = {name: queued[:rows.get(name, 0)] for name, queued in self.rows.items()}
        self.touched = {k: v for k, v in self.touched.items() if k in touched}
        self.new_cases = {k: v for k, v in self.new_cases.items() if k in new_cases}
        self.new_by_cell = {key: [row for row in rows if row[0] in new_cases]
                            for key, rows in self.new_by_cell.items()}
        # what was read about photos may hold links rolled back: read again (what went before is flushed)
        for key in [key for key in self.cache if isinstance(key, tuple) and key[0] == "evidence"]:
            del self.cache[key]
        del self.scope_exits[exits:]


def changes() -> Changes:
    info = db.session.info
    pending = info.get("gridcase_changes")
    if pending is None:  # (not setdefault: that would build a Changes on every call)
        pending = info["gridcase_changes"] = Changes()
    return pending


_session_changes = changes  # for functions with an argument named ``changes``


def forget_prefetched() -> None:
    """Drop what ``prefetch_for_updates`` read: from here on the database is asked again."""
    cache = changes().cache
    cache.pop("events", None)
    cache.pop("open_stages", None)


def discard_changes() -> None:
    """Forget what a rolled-back transaction had changed."""
    db.session.info.pop("gridcase_changes", None)


def touch(case: Case, ch: Changes | None = None) -> None:
    """Mark a case changed in this transaction (numbered and stamped by ``finish_changes``)."""
    (ch or changes()).touched[case.id] = case


def add_row(model, as_row: bool, ch: Changes | None = None, /, **values):
    """A new row: an ORM object added to the session, or (``as_row``) a plain namespace queued for a Core
    INSERT. Both read and write the same attributes, so the checks that follow need not know which."""
    if not as_row:
        obj = model(**values)
        db.session.add(obj)
        return obj
    row = SimpleNamespace(**values)
    (ch or changes()).rows.setdefault(model.__tablename__, []).append(row)
    return row


def _insert_rows(queued: dict[str, list[SimpleNamespace]]) -> None:
    """One INSERT per table (and per set of columns), parents first. Plain INSERT statements, so the
    database's triggers fire for every row."""
    for name in sorted(queued, key=lambda name: name != Case.__tablename__):  # the rest point at cases
        rows, table = queued[name], db.metadata.tables[name]
        if not rows:
            continue
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            values = vars(row)
            groups.setdefault(tuple(values), []).append(values)
        for group in groups.values():
            insert_many(db.session.connection(), table, group)


_REGION_COLUMNS = ("code", "level", *(f"{level}_code" for level in LEVELS))


def _region(code: str, ch: Changes | None = None):
    """A region's code, level and ancestor codes (a plain row: no geometry, no ORM object), or None."""
    cache = (ch or changes()).regions
    if code not in cache:
        t = Region.__table__.c
        cache[code] = db.session.execute(
            select(*(t[name] for name in _REGION_COLUMNS)).where(t.code == code)).first()
    return cache[code]


def _category(code: str, ch: Changes | None = None):
    """A category's code, roles and whether it is active (a plain row), or None."""
    cache = (ch or changes()).categories
    if code not in cache:
        if not cache:  # the first look-up of the transaction reads the (small) table whole
            t = Category.__table__.c
            cache.update((row.code, row) for row in db.session.execute(select(t.code, t.roles, t.active)))
        cache.setdefault(code, None)
    return cache[code]


def _bump(name: str, n: int = 1) -> int:
    """Add ``n`` to a named counter under its row lock; returns the new value."""
    dialect = db.session.get_bind().dialect.name
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(Counter.__table__)
    # one statement: the row made or updated under its lock, its new value returned
    return db.session.execute(
        upsert.values(name=name, value=n).on_conflict_do_update(
            index_elements=[Counter.__table__.c.name], set_={"value": Counter.__table__.c.value + n})
        .returning(Counter.__table__.c.value)).scalar_one()


def _settle(cases: list) -> tuple[dict, int | None]:
    """Number new cases and stamp the change order (see ``finish_changes``)."""
    if not cases:
        return {}, None
    new = [c for c in cases if c.number is None]
    prefix = current_app.config["CASE_NUMBER_PREFIX"]
    by_year: dict[int, list] = {}
    for case in new:
        by_year.setdefault(case.reported_at.astimezone(CHINA).year, []).append(case)
    for year, group in sorted(by_year.items()):
        last = _bump(f"case_number:{prefix}:{year}", len(group))
        for offset, case in enumerate(sorted(group, key=lambda c: (c.reported_at, c.id))):
            case.number = f"{prefix}-{year}-{last - len(group) + offset + 1:06d}"
    last = _bump("change_seq", len(cases))
    seq_of = {}
    for offset, case in enumerate(cases):
        case.change_seq = seq_of[case.id] = last - len(cases) + offset + 1
    return seq_of, last


def finish_changes() -> None:
    """Number new cases and stamp the change order, as the last writes before
    commit: the counter's row lock is then held only to the commit, so stamps follow commit order and no
    pull misses one. New cases get their number before their INSERT is flushed; queued rows are written."""
    pending = db.session.info.pop("gridcase_changes", None)
    if pending is None:
        return
    with db.session.no_autoflush:
        cases = [pending.touched[cid] for cid in sorted(pending.touched)]
        seq_of, last = _settle(cases)
        for scope_exit in pending.scope_exits:
            scope_exit.change_seq = seq_of.get(scope_exit.case_id, last)
        _insert_rows(pending.rows)


def flush_rows() -> None:
    """Write the rows queued so far (numbered and stamped as ``finish_changes`` would), because
    what follows reads the database or points at them. Stamping early holds the counters' row locks a
    little longer; the stamps still follow commit order."""
    pending = db.session.info.get("gridcase_changes")
    if pending is None or not pending.rows:
        return
    with db.session.no_autoflush:
        queued = {row.id for row in pending.rows.get(Case.__tablename__, ())}
        cases = [pending.touched[cid] for cid in sorted(queued) if isinstance(pending.touched.get(cid), SimpleNamespace)]
        _settle(cases)
        _insert_rows(pending.rows)
    pending.rows = {}
    for case in cases:
        del pending.touched[case.id]
    for case_id in queued:
        pending.new_cases.pop(case_id, None)
    # The cases are in the database now: a look-up finds them there.
    if pending.existing_ids is not None:
        pending.existing_ids |= queued


def _event(case: Case, actor: Actor, action: str, changes: dict | None = None, data: dict | None = None, *,
           as_row: bool = False, ch: Changes | None = None) -> int:
    case.version = (case.version or 0) + 1
    case.updated_at = actor.now
    ch = ch or _session_changes()
    add_row(CaseEvent, as_row, ch, case_id=case.id, version=case.version, action=action,
            actor_id=actor.user.id if actor.user is not None else None, device_id=actor.device_id,
            op_id=actor.op_id, at=actor.now, client_time=actor.client_time, changes=changes or {}, data=data or {})
    touch(case, ch)
    known = ch.cache.get("events", {}).get(case.id)
    if known is not None:
        known[1].append((case.version, changes or {}))
    return case.version


def _place(case: Case, micro_grid: Region) -> None:
    for level in LEVELS:
        setattr(case, f"{level}_code", getattr(micro_grid, f"{level}_code"))


def _add_flags(case: Case, flags: list[str]) -> None:
    if flags:
        case.flags = sorted(set(case.flags or []) | set(flags))


def get_case(case_id: str, *, lock: bool = False) -> Case | None:
    stmt = select(Case).where(Case.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalars(stmt).first()


def follow_merges(case: Case, *, lock: bool = False) -> tuple[Case, bool]:
    """The surviving case a merged one points to (and whether we moved)."""
    moved = False
    seen = {case.id}
    while case.state == "merged" and case.merged_into and case.merged_into not in seen:
        seen.add(case.merged_into)
        target = get_case(case.merged_into, lock=lock)
        if target is None:
            break
        case, moved = target, True
    return case, moved


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


def _link_photos(case: Case, actor: Actor, photos: list[dict], default_role: str, version: int,
                 note_id: str | None = None, *, as_row: bool = False, ch: Changes | None = None) -> list[str]:
    """Link photos by hash (append-only; a link seen before is skipped), attaching those the actor has
    shown to hold (app/media/links.py). Returns the flags the case earned from them."""
    if not photos:
        return []
    ch = ch or changes()
    if case.id in ch.new_cases:
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
        rows.append(add_row(CasePhoto, as_row, ch, case_id=case.id, sha256=ref["sha256"], role=role, note_id=note_id,
                            added_by=actor.user.id, added_at=actor.now, event_version=version,
                            position=len(rows), flags=[], attached=False))
    if not rows:
        return []
    return evidence.attach(case, actor.user, rows, evidence.evidence_for(ch.cache, actor.user))


# ---------------------------------------------------------------------------------------------- location


def _resolve_location(loc: dict | None) -> tuple[float | None, float | None, float | None, dict | None]:
    if not loc:
        return None, None, None, None
    lat, lon = to_wgs84(loc["lat"], loc["lon"], loc.get("crs") or "wgs84")
    original = {"lat": loc["lat"], "lon": loc["lon"], "crs": loc.get("crs") or "wgs84"}
    return _round(lat), _round(lon), loc.get("accuracy_m"), original


def _micro_grid_for(actor: Actor, micro_grid_id: str | None, lat: float | None, lon: float | None,
                    accuracy: float | None, ch: Changes | None = None) -> tuple[Region, list[str]]:
    """The micro-grid a report belongs to, and the flags its location earns. Raises Refused."""
    flags: list[str] = []
    tolerance = float(current_app.config["OUTSIDE_TOLERANCE_M"])
    index = micro_grid_index()
    if micro_grid_id:
        region = _region(micro_grid_id, ch)
        if region is None or region.level != "micro_grid":
            raise Refused(errors={"micro_grid_id": [f"unknown micro-grid {micro_grid_id!r}"]})
        if lat is not None and index.farther_than(region.code, lat, lon, (accuracy or 0) + tolerance):
            flags.append("outside_micro_grid")
        return region, flags
    code = index.locate(lat, lon)
    if code is None:
        code = index.nearest(lat, lon, (accuracy or 0) + tolerance)
    if code is None:
        raise Refused("no_micro_grid", errors={"location": ["lies in no micro-grid; choose one"]})
    flags.append("micro_grid_from_location")
    return _region(code, ch), flags


def _check_report_scope(actor: Actor, region: Region) -> None:
    user = actor.user
    if user.role != "admin" and not in_subtree(region, user.region):
        raise Refused("out_of_scope", status=403)


NEIGHBOUR_TERMS = 64  # boxes per query: SQLite's expression depth, and few statement shapes to cache


def _duplicate_box(lat: float, lon: float, margin: float = 1.0) -> tuple[float, float, float, float]:
    """lat0, lat1, lon0, lon1 around a point: every point within 50 m (times ``margin``) lies inside."""
    dlat = DUPLICATE_RADIUS_M * margin / 110_000.0
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


@dataclass
class Neighbours:
    """The open cases around a batch's reports, read before the write lock (see ``read_neighbours``)."""

    places: frozenset  # (category, lat, lon) of the reports whose 50 m the read covers
    categories: frozenset
    bounds: tuple[float, float, float, float]  # lat0, lat1, lon0, lon1 around all of them
    since: datetime
    seen_seq: int  # every case changed after this read has a higher change_seq
    by_cell: dict  # (category, cell_lat, cell_lon) -> [(id, lat, lon, reported_at)]


_neighbour_queries: dict[int, Select] = {}


def _neighbour_query(terms: int) -> Select:
    """The cases inside any of ``terms`` boxes (parameters k, a-h numbered from 0, and ``since``). Every
    condition sits inside each term: a condition outside the OR lets SQLite pick an index for it (the
    state's, scanning every open case) instead of one search of the dup index per term. The state is
    checked by the caller: few closed cases lie within 60 m of a report."""
    if terms not in _neighbour_queries:
        t = Case.__table__.c
        since = bindparam("since", type_=t.reported_at.type)
        _neighbour_queries[terms] = select(
            t.id, t.category, t.lat, t.lon, t.cell_lat, t.cell_lon, t.reported_at, t.state).where(or_(*(and_(
                t.category == bindparam(f"k{i}"), t.cell_lat.between(bindparam(f"a{i}"), bindparam(f"b{i}")),
                t.cell_lon.between(bindparam(f"c{i}"), bindparam(f"d{i}")), t.reported_at >= since,
                t.lat.between(bindparam(f"e{i}"), bindparam(f"f{i}")),
                t.lon.between(bindparam(f"g{i}"), bindparam(f"h{i}"))) for i in range(terms))))
    return _neighbour_queries[terms]


def read_neighbours(places: list[tuple[str, float, float]], now: datetime) -> Neighbours | None:
    """Read once the open cases that could be possible duplicates of a batch's reports: for each report,
    the open cases of its category in a box a little wider than 50 m around it (an index range on the
    category and cell, the box checked by the database), so what comes back grows with the reports, not
    with the cases around them. No write lock needed: ``use_neighbours`` brings it up to date under the
    lock with the cases changed since, found by their change stamps."""
    if not places:
        return None
    t = Case.__table__.c  # columns, not ORM attributes: plain tuples back, no ORM loading
    boxes = sorted({(category, *_duplicate_box(lat, lon, 1.25)) for category, lat, lon in places})
    # First the stamp, then the cases: whatever commits in between is in both, and the later copy wins.
    # Stamps are given under a row lock held to the commit, so they follow commit order.
    seen = db.session.scalar(select(func.max(t.change_seq))) or 0
    since = now - DUPLICATE_WINDOW - timedelta(minutes=1)  # reports planned a moment before ``now``
    bounds = (min(b[1] for b in boxes), max(b[2] for b in boxes), min(b[3] for b in boxes), max(b[4] for b in boxes))
    found = Neighbours(frozenset(places), frozenset(b[0] for b in boxes), bounds, since, seen, {})
    found_ids = set()
    for start in range(0, len(boxes), NEIGHBOUR_TERMS):
        chunk = boxes[start:start + NEIGHBOUR_TERMS]
        # padded to a power of two with a box of no category: a handful of statements, each built once
        chunk += [("", 0.0, 0.0, 0.0, 0.0)] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
        params = {"since": since}
        for i, (category, lat0, lat1, lon0, lon1) in enumerate(chunk):
            (c_lat0, c_lon0), (c_lat1, c_lon1) = cell_of(lat0, lon0), cell_of(lat1, lon1)
            params.update({f"k{i}": category, f"a{i}": c_lat0, f"b{i}": c_lat1, f"c{i}": c_lon0, f"d{i}": c_lon1,
                           f"e{i}": lat0, f"f{i}": lat1, f"g{i}": lon0, f"h{i}": lon1})
        for cid, category, lat, lon, c_lat, c_lon, reported, state in db.session.execute(
                _neighbour_query(len(chunk)), params):
            if state in OPEN_STATES and cid not in found_ids:
                found_ids.add(cid)
                found.by_cell.setdefault((category, c_lat, c_lon), []).append((cid, lat, lon, reported))
    return found


def use_neighbours(found: Neighbours) -> None:
    """Under the write lock: what ``read_neighbours`` found, updated with the cases changed since (new,
    edited, closed), becomes this transaction's look-up for ``_possible_duplicates``."""
    lat0, lat1, lon0, lon1 = found.bounds
    t = Case.__table__.c
    changed = db.session.execute(
        select(t.id, t.category, t.lat, t.lon, t.cell_lat, t.cell_lon, t.reported_at, t.state)
        .where(t.change_seq > found.seen_seq)).all()
    by_cell = found.by_cell
    if changed:
        ids = {row.id for row in changed}
        by_cell = {key: [item for item in items if item[0] not in ids] for key, items in by_cell.items()}
        # a case too far from every report is harmless here: the distance decides
        for cid, category, lat, lon, c_lat, c_lon, reported, state in changed:
            if (category in found.categories and state in OPEN_STATES and reported >= found.since
                    and lat is not None and lat0 <= lat <= lat1 and lon0 <= lon <= lon1):
                by_cell.setdefault((category, c_lat, c_lon), []).append((cid, lat, lon, reported))
    ch = changes()
    ch.neighbour_places = found.places
    ch.neighbours = by_cell


def _nearby(by_cell: dict, case: Case, since: datetime):
    for dlat in (-1, 0, 1):
        for dlon in (-1, 0, 1):
            for cid, lat, lon, reported in by_cell.get((case.category, case.cell_lat + dlat, case.cell_lon + dlon), ()):
                if cid != case.id and reported >= since:
                    yield cid, lat, lon


def _possible_duplicates(case: Case, ch: Changes | None = None) -> list[str]:
    """Open cases of the same category within 50 m and 72 h: an index look-up, never a scan."""
    if case.lat is None:
        return []
    cl, cn = case.cell_lat, case.cell_lon
    since = case.reported_at - DUPLICATE_WINDOW
    ch = ch or changes()
    # this transaction's own new cases are not in the database yet
    rows = list(_nearby(ch.new_by_cell, case, since))
    if ch.neighbours is not None and (case.category, case.lat, case.lon) in ch.neighbour_places:
        rows += _nearby(ch.neighbours, case, since)
    else:
        rows += db.session.execute(
            select(Case.id, Case.lat, Case.lon).where(
                Case.category == case.category,
                Case.cell_lat.between(cl - 1, cl + 1), Case.cell_lon.between(cn - 1, cn + 1),
                Case.reported_at >= since, Case.state.in_(OPEN_STATES), Case.id != case.id)).all()
    # a cheap box first: most neighbours in the 3 × 3 cells are farther than 50 m
    lat0, lat1, lon0, lon1 = _duplicate_box(case.lat, case.lon)
    hits = [(haversine_m(case.lat, case.lon, lat, lon), cid) for cid, lat, lon in rows
            if lat0 <= lat <= lat1 and lon0 <= lon <= lon1]
    return [cid for d, cid in sorted(hits) if d <= DUPLICATE_RADIUS_M]


# ---------------------------------------------------------------------------------------------- create


@dataclass
class ReportPlan:
    """What a report will become, worked out from reference data only (categories, regions, the calendar
    and limits): a sync batch does this before it takes the write lock. ``early`` and ``late`` are the
    refusals found before and after the point where the case's existence is checked (the order in which
    ``create_case`` reports them)."""

    now: datetime
    report: dict
    early: Refused | None = None
    late: Refused | None = None
    values: dict = field(default_factory=dict)  # the case's columns, but its flags and duplicates
    flags: list[str] = field(default_factory=list)
    stage: dict = field(default_factory=dict)


def plan_report(actor: Actor, report: dict, *, skew_flag: bool = False) -> ReportPlan:
    """The part of ``create_case`` that needs no write lock: checks, place, flags, the first stage."""
    plan = ReportPlan(now=actor.now, report=report)
    user = actor.user
    ch = changes()
    category = _category(report["category"], ch)
    try:
        if category is None or not category.active:
            raise Refused("unknown_category",
                          errors={"report.category": [f"unknown category {report['category']!r}"]})
        if user.role not in (category.roles or []) and user.role != "admin":
            raise Refused("forbidden", status=403,
                          errors={"report.category": [f"a {user.role} may not report {category.code}"]})
        if report.get("handled_on_spot") and user.role == "volunteer":
            raise Refused("forbidden", status=403,
                          errors={"report.handled_on_spot": ["only grid staff close a matter on the spot"]})
    except Refused as exc:
        plan.early = exc
        return plan
    lat, lon, accuracy, original = _resolve_location(report.get("location"))
    try:
        region, flags = _micro_grid_for(actor, report.get("micro_grid_id"), lat, lon, accuracy, ch)
        _check_report_scope(actor, region)
    except Refused as exc:
        plan.late = exc
        return plan
    if skew_flag:
        flags.append("clock_skew")
    plan.flags = [f for f in flags if f != "micro_grid_from_location"] + (
        ["micro_grid_from_location"] if "micro_grid_from_location" in flags else [])
    on_spot = bool(report.get("handled_on_spot"))
    captured_at = report.get("captured_at")
    cell_lat, cell_lon = cell_of(lat, lon) if lat is not None else (None, None)
    plan.values = dict(
        id=report["id"], number=None, category=category.code, risk_level=report["risk_level"],
        description=report.get("description") or "", state="resolved" if on_spot else "reported",
        level="grid", handled_on_spot=on_spot, reporter_id=user.id, reporter_device_id=actor.device_id,
        lat=lat, lon=lon, accuracy_m=accuracy, location_original=original, cell_lat=cell_lat, cell_lon=cell_lon,
        captured_at=captured_at, captured_at_raw=captured_at.isoformat() if captured_at else None,
        clock_skew_s=round((actor.client_time - actor.now).total_seconds(), 1)
        if actor.client_time is not None else None,
        reported_at=actor.now, updated_at=actor.now, version=0, change_seq=0,
        **{f"{level}_code": getattr(region, f"{level}_code") for level in LEVELS})
    # the first stage (deadlines.on_created), worked out on a stand-in for the case
    name = "close" if on_spot else "accept"
    stand_in = SimpleNamespace(**plan.values)
    stage = SimpleNamespace(case_id=report["id"], stage=name, started_at=actor.now,
                            **deadlines.stage_limit(name, stand_in), consumed_s=0.0,
                            running_since=actor.now, due_at=None, warn_at=None, ended_at=None, outcome=None,
                            escalated_at=None)
    deadlines._schedule(stage, stand_in, deadlines.Calendar.load(), actor.now)  # due and warn, on both
    plan.stage = vars(stage)
    plan.values.update(stage=stand_in.stage, stage_clock=stand_in.stage_clock, due_at=stand_in.due_at,
                       warn_at=stand_in.warn_at)
    return plan


def create_case(actor: Actor, report: dict, *, skew_flag: bool = False, rows: bool = False,
                plan: ReportPlan | None = None) -> tuple[Case, Outcome]:
    """A report becomes a case in state ``reported`` (``resolved`` when handled on the spot).

    With ``rows``, the case and its event, stage and photo links are plain namespaces queued for one Core
    INSERT per table (a sync batch's fast path; ``flush_rows`` writes them early for ops that read them);
    every check that can refuse the report runs before the first of them is made. ``plan`` is what
    ``plan_report`` worked out before (with the same ``actor.now``). Raises Refused (validation_failed,
    unknown_category, out_of_scope, no_micro_grid, case_exists) and Forbidden.
    """
    plan = plan or plan_report(actor, report, skew_flag=skew_flag)
    if plan.early is not None:
        raise plan.early
    batch = changes()
    exists = report["id"] in batch.new_cases or (
        report["id"] in batch.existing_ids if batch.existing_ids is not None
        else db.session.get(Case, report["id"]) is not None)
    if exists:
        raise Refused("case_exists", status=409, errors={"report.id": ["a case with this id exists already"]})
    if plan.late is not None:
        raise plan.late

    values = plan.values
    case = add_row(Case, rows, batch, flags=[], duplicate_of=[], **values)
    batch.new_cases[case.id] = case
    lat, lon = values["lat"], values["lon"]
    if lat is not None:
        batch.new_by_cell.setdefault((case.category, values["cell_lat"], values["cell_lon"]), []).append(
            (case.id, lat, lon, case.reported_at))

    outcome = Outcome(flags=list(plan.flags))
    dups = _possible_duplicates(case, batch)
    if dups:
        outcome.flags.append("possible_duplicate")
        outcome.duplicate_of = dups
        case.duplicate_of = dups
    _add_flags(case, outcome.flags)
    location = {"lat": lat, "lon": lon, "accuracy_m": values["accuracy_m"]} if lat is not None else None
    on_spot = values["handled_on_spot"]
    version = _event(case, actor, "create", changes={
        "state": [None, case.state], "category": [None, case.category], "risk_level": [None, case.risk_level],
        "description": [None, case.description], "micro_grid_id": [None, case.micro_grid_code],
        "location": [None, location], "level": [None, "grid"]},
        data={"flags": outcome.flags, "duplicate_of": dups, "handled_on_spot": on_spot,
              "location_original": values["location_original"], "captured_at": values["captured_at_raw"]},
        as_row=rows, ch=batch)
    outcome.flags += _link_photos(case, actor, report.get("photos") or [], "rectification" if on_spot else "evidence",
                                  version, as_row=rows, ch=batch)
    add_row(CaseStage, rows, batch, **plan.stage)
    return case, outcome


# ---------------------------------------------------------------------------------------------- permissions


def can_edit(user: User, case: Case) -> bool:
    if not case_visible(case, user):
        return False
    if user.role == "volunteer":
        return case.reporter_id == user.id and case.state in ("reported", "returned")
    if user.role == "grid_worker" and case.reporter_id == user.id and case.state in ("reported", "returned"):
        return True
    return user.role in ("grid_worker", "reviewer", "admin") and case.state not in ("closed", "rejected", "merged")


def require_case_for_op(user: User, case: Case) -> None:
    if not case_visible(case, user):
        raise Refused("out_of_scope", status=403)


# ---------------------------------------------------------------------------------------------- merge


def values_at(case: Case, version: int, names: list[str]) -> dict:
    """The values the fields had at ``version``, read back from the event log (or from the events a sync
    batch read up front for this case, see ``prefetch_for_updates``)."""
    values: dict = {}
    if version < case.version:
        known = _session_changes().cache.get("events", {}).get(case.id)
        if known is not None and known[0] <= version:
            rows = (diff for v, diff in known[1] if v > version)
        else:
            rows = db.session.scalars(select(CaseEvent.changes).where(CaseEvent.case_id == case.id,
                                                                      CaseEvent.version > version)
                                      .order_by(CaseEvent.version))
        for changes in rows:
            for name in names:
                if name in changes and name not in values:
                    values[name] = changes[name][0]
            if len(values) == len(names):
                break
    for name in names:
        if name not in values:
            values[name] = case.field_value(name) if name != "state" else case.state
    return values


def _normalise_changes(changes: dict) -> dict:
    """Client values in the form the server stores and compares."""
    out = dict(changes)
    if "location" in out:
        loc = out["location"]
        lat, lon, accuracy, original = _resolve_location(loc)
        out["location"] = {"lat": lat, "lon": lon, "accuracy_m": accuracy}
        out["_location_original"] = original
    return out


def _check_field(actor: Actor, name: str, value) -> Region | None:
    """What can refuse a field's new value (and the micro-grid it names). Raises Refused."""
    if name == "category":
        category = _category(value)
        if category is None or not category.active:
            raise Refused("unknown_category", errors={"changes.category": [f"unknown category {value!r}"]})
    elif name == "micro_grid_id":
        region = db.session.get(Region, value)
        if region is None or region.level != "micro_grid":
            raise Refused(errors={"changes.micro_grid_id": [f"unknown micro-grid {value!r}"]})
        if actor.user.role != "admin" and not in_subtree(region, actor.user.region):
            raise Refused("out_of_scope", status=403)
        return region
    return None


def _apply_field(actor: Actor, case: Case, name: str, value, original_location: dict | None = None) -> None:
    region = _check_field(actor, name, value)
    if name == "category":
        case.category = value
    elif name == "risk_level":
        case.risk_level = value
    elif name == "description":
        case.description = value
    elif name == "location":
        case.lat, case.lon, case.accuracy_m = value["lat"], value["lon"], value.get("accuracy_m")
        case.cell_lat, case.cell_lon = cell_of(case.lat, case.lon)
        if original_location is not None:
            case.location_original = original_location
    elif name == "micro_grid_id":
        old = {f"{lvl}_code": getattr(case, f"{lvl}_code") for lvl in LEVELS}
        _place(case, region)
        scope_exit = CaseScopeExit(case_id=case.id, at=actor.now, change_seq=0, **old)
        db.session.add(scope_exit)
        changes().scope_exits.append(scope_exit)


def update_case(actor: Actor, case: Case, base_version: int, changes: dict, *,
                redirected: bool = False, as_row: bool = False) -> Outcome:
    """Three-way merge of an edit made at ``base_version``: fields the server has not touched since take
    the client's value; fields both changed differently keep the server's and become conflict records.
    Everything that can refuse the edit is checked before its first write (``as_row``: its event is a
    queued row, see ``create_case``).

    Raises Refused (out_of_scope, forbidden, base_version_ahead, unknown_category).
    """
    require_case_for_op(actor.user, case)
    if not can_edit(actor.user, case):
        raise Refused("forbidden", status=403)
    if base_version > case.version and not redirected:
        raise Refused("base_version_ahead", errors={"base_version": [f"the case is at version {case.version}"]})
    client = _normalise_changes(changes)
    original_location = client.pop("_location_original", None)
    names = list(client)
    base = values_at(case, base_version, names) if not redirected else {}
    outcome = Outcome(flags=["redirected"] if redirected else [])
    apply: list[tuple[str, object, object]] = []
    diverged: list[tuple[str, object, object, object]] = []
    for name in names:
        server_value = case.field_value(name)
        client_value = client[name]
        if server_value == client_value:
            continue
        base_value = base.get(name, object())
        if not redirected and server_value == base_value:
            apply.append((name, server_value, client_value))
        else:
            diverged.append((name, None if redirected else base_value, server_value, client_value))
    for name, _, client_value in apply:
        _check_field(actor, name, client_value)
    applied: dict = {}
    for name, server_value, client_value in apply:
        _apply_field(actor, case, name, client_value, original_location)
        applied[name] = [server_value, client_value]
    for name, base_value, server_value, client_value in diverged:
        conflict = Conflict(id=str(uuid.uuid4()), case_id=case.id, field=name, base=base_value, server=server_value,
                            client=client_value, op_id=actor.op_id, device_id=actor.device_id,
                            user_id=actor.user.id, base_version=base_version, created_at=actor.now, status="open")
        db.session.add(conflict)
        outcome.conflicts.append({"field": name, "base": base_value, "server": server_value,
                                  "client": client_value, "conflict_id": conflict.id})
    if {"risk_level", "category"} & set(applied):
        _limits_changed(case, actor.now)
    if applied or outcome.conflicts:
        data = {"base_version": base_version}
        if outcome.conflicts:
            data["conflicts"] = [c["conflict_id"] for c in outcome.conflicts]
        if redirected:
            data["redirected"] = True
        _event(case, actor, "update", changes=applied, data=data, as_row=as_row)
    if outcome.conflicts:
        outcome.status = "conflict"
    return outcome


def _limits_changed(case: Case, now: datetime) -> None:
    """``deadlines.on_limits_changed``, with the running stage a sync batch read up front when it has it."""
    known = changes().cache.get("open_stages")
    if known is None or case.id not in known:
        deadlines.on_limits_changed(case, now)
        return
    stage = known[case.id]
    if stage is not None:
        deadlines.relimit(stage, case, deadlines.Calendar.load(), now)


def prefetch_for_updates(found: dict[str, Case], bases: dict[str, int]) -> None:
    """For a sync batch whose ops on these (loaded) cases are all ``case.update``: their running stages and
    the events after the oldest base version each op names, one query each. ``values_at`` and the merge
    then read them from memory; ``_event`` keeps the events up to date as the batch adds its own. Only
    while the batch runs without savepoints (nothing rolled back under the cache): the first op that needs
    one calls ``forget_prefetched``."""
    if not found:
        return
    ch = changes()
    stages = ch.cache.setdefault("open_stages", {})
    stages.update((cid, None) for cid in found)
    for stage in db.session.scalars(select(CaseStage).where(CaseStage.case_id.in_(list(found)),
                                                            CaseStage.ended_at.is_(None))
                                    .order_by(CaseStage.started_at)):
        stages[stage.case_id] = stage  # the latest started, as deadlines.current_stage picks
    events = ch.cache.setdefault("events", {})
    older = {cid: base for cid, base in bases.items() if cid in found and base < found[cid].version}
    for cid, case in found.items():
        events[cid] = (min(older.get(cid, case.version), case.version), [])
    if older:
        t = CaseEvent.__table__.c
        for cid, version, diff in db.session.execute(
                select(t.case_id, t.version, t.changes)
                .where(or_(*(and_(t.case_id == cid, t.version > base) for cid, base in older.items())))
                .order_by(t.case_id, t.version)):
            events[cid][1].append((version, diff))


# ---------------------------------------------------------------------------------------------- notes


def add_note(actor: Actor, case: Case, note: dict, *, default_role: str = "evidence", action: str = "note",
             redirected: bool = False, as_row: bool = False, known_notes: set[str] | None = None) -> Outcome:
    """Append a note and its photos (append-only: always merges). A note id seen before is a no-op.

    ``as_row``: the event, note and photo links are queued as rows for the batch's INSERTs (nothing is
    written before every check has passed). ``known_notes``: the note ids that exist already, read for the
    whole batch (kept up to date here), instead of a look-up per note.

    Raises Refused (out_of_scope, forbidden).
    """
    user = actor.user
    require_case_for_op(user, case)
    if user.role == "volunteer" and case.reporter_id != user.id:
        raise Refused("forbidden", status=403)
    outcome = Outcome(flags=["redirected"] if redirected else [])
    if known_notes is not None:
        if note["id"] in known_notes:
            return outcome
        known_notes.add(note["id"])
    elif db.session.get(CaseNote, note["id"]) is not None:
        return outcome
    version = _event(case, actor, action, data={"note_id": note["id"], "text": note.get("text", ""),
                                                 "photos": [p["sha256"] for p in note.get("photos") or []]},
                     as_row=as_row)
    add_row(CaseNote, as_row, id=note["id"], case_id=case.id, author_id=user.id, text=note.get("text", ""),
            captured_at=note.get("captured_at"), created_at=actor.now, event_version=version)
    outcome.flags += _link_photos(case, actor, note.get("photos") or [], default_role, version, note_id=note["id"],
                                  as_row=as_row)
    return outcome


def existing_notes(note_ids: list[str]) -> set[str]:
    """Which of these note ids are stored already (one query)."""
    if not note_ids:
        return set()
    return set(db.session.scalars(select(CaseNote.id).where(CaseNote.id.in_(sorted(set(note_ids))))))


# ---------------------------------------------------------------------------------------------- workflow


def _allowed(user: User, case: Case, roles: tuple[str, ...]) -> bool:
    if user.role in roles and user.role != "volunteer":
        return True
    if "reporter" in roles and case.reporter_id == user.id:
        return True
    return "assignee" in roles and case.assignee_id == user.id


def _check_needs(actor: Actor, case: Case, row: workflow.Transition, params: dict) -> dict:
    """Checks what the action needs; returns the resolved extras (assignee user, target case)."""
    extras: dict = {}
    errors: dict = {}
    for need in row.needs:
        if need == "reason" and not (params.get("reason") or "").strip():
            errors["reason"] = ["a reason is required"]
        elif need == "target":
            target_id = params.get("target")
            target = get_case(target_id) if target_id else None
            if target is None or not case_visible(target, actor.user):
                errors["target"] = ["the case to merge into is required and must be visible to you"]
            elif target.id == case.id:
                errors["target"] = ["a case cannot be merged into itself"]
            elif target.township_code != case.township_code:
                errors["target"] = ["duplicates are merged within one township"]
            elif target.state in ("merged", "rejected"):
                errors["target"] = [f"the target case is {target.state}"]
            else:
                extras["target"] = target
        elif need == "assignee_or_unit":
            username = params.get("assignee")
            if username:
                assignee = db.session.scalar(select(User).where(User.username == username))
                if assignee is None or not assignee.is_active or not (
                        actor.user.role == "admin" or in_subtree(assignee.region, actor.user.region)
                        or in_subtree(actor.user.region, assignee.region)):
                    errors["assignee"] = [f"unknown user {username!r} in your region"]
                else:
                    extras["assignee"] = assignee
            elif not (params.get("unit") or "").strip():
                errors["assignee"] = ["an assignee (username) or a unit is required"]
        elif need == "rectification_photo_or_note":
            note = params.get("note") or {}
            has_photo = bool(note.get("photos")) or db.session.scalar(
                select(func.count()).where(CasePhoto.case_id == case.id,
                                                       CasePhoto.role == "rectification")) > 0
            if not has_photo and not (note.get("text") or "").strip():
                errors["note"] = ["resolving needs a rectification photo or a note"]
        elif need == "level_below_city" and case.level == "city":
            errors["action"] = ["the case is already handled at city level"]
        elif need == "not_suspended" and case.suspended_at is not None:
            errors["action"] = ["the case is already suspended"]
        elif need == "suspended" and case.suspended_at is None:
            errors["action"] = ["the case is not suspended"]
    if errors:
        raise Refused(errors=errors)
    return extras


def transition(actor: Actor, case: Case, action: str, base_version: int, params: dict, *,
               redirected: bool = False) -> Outcome:
    """Move a case through the workflow, checked against its current state and the actor's role.

    Already done since ``base_version`` → no-op flagged ``stale_transition``; impossible now but possible
    at the base → a conflict on ``state``. Raises Refused (out_of_scope, forbidden,
    transition_not_allowed, validation_failed, base_version_ahead).
    """
    user = actor.user
    require_case_for_op(user, case)
    outcome = Outcome(flags=["redirected"] if redirected else [])
    if base_version > case.version and not redirected:
        raise Refused("base_version_ahead", errors={"base_version": [f"the case is at version {case.version}"]})
    row = workflow.find(case.state, action)
    if row is None:
        base_state = values_at(case, base_version, ["state"])["state"] if base_version < case.version \
            else case.state
        base_row = workflow.find(base_state, action) if base_state != case.state else None
        if base_row is not None and (base_row.next == case.state or _already_done(case, action)):
            outcome.flags.append("stale_transition")
            if params.get("note"):
                add_note(actor, case, params["note"],
                         default_role="rectification" if action == "resolve" else "evidence")
            return outcome
        if base_row is not None:
            conflict = Conflict(id=str(uuid.uuid4()), case_id=case.id, field="state", base=base_state,
                                server=case.state, client=base_row.next or base_state, op_id=actor.op_id,
                                device_id=actor.device_id, user_id=user.id, base_version=base_version,
                                created_at=actor.now, status="open")
            db.session.add(conflict)
            if params.get("note"):
                add_note(actor, case, params["note"],
                         default_role="rectification" if action == "resolve" else "evidence")
            _event(case, actor, "transition_conflict", data={"action": action, "conflicts": [conflict.id],
                                                              "base_version": base_version})
            outcome.status = "conflict"
            outcome.conflicts.append({"field": "state", "base": base_state, "server": case.state,
                                      "client": conflict.client, "conflict_id": conflict.id, "action": action})
            return outcome
        raise Refused("transition_not_allowed", status=409,
                      errors={"action": [f"{action} is not possible in state {case.state}"]})
    if not _allowed(user, case, row.roles):
        raise Refused("forbidden", status=403, errors={"action": [f"a {user.role} may not {action} this case"]})
    extras = _check_needs(actor, case, row, params)

    changes: dict = {}
    data: dict = {"action": action, "base_version": base_version}
    if params.get("reason"):
        data["reason"] = params["reason"]
    if row.next and row.next != case.state:
        changes["state"] = [case.state, row.next]
        case.state = row.next
    if action == "assign":
        assignee = extras.get("assignee")
        new_id = assignee.id if assignee else None
        if new_id != case.assignee_id:
            changes["assignee"] = [_username(case.assignee_id), assignee.username if assignee else None]
            case.assignee_id = new_id
        unit = (params.get("unit") or "").strip() or None
        if unit != case.unit:
            changes["unit"] = [case.unit, unit]
            case.unit = unit
    elif action == "merge":
        target = extras["target"]
        changes["merged_into"] = [case.merged_into, target.id]
        case.merged_into = target.id
        _event(target, actor, "merged_in", data={"case_id": case.id, "number": case.number})
    elif action == "escalate":
        new_level = HANDLING_UP[case.level]
        changes["level"] = [case.level, new_level]
        case.level = new_level
    elif action == "suspend":
        changes["suspended"] = [False, True]
        case.suspended_at = actor.now
    elif action == "resume":
        changes["suspended"] = [True, False]
        case.suspended_at = None
    if row.next == "closed":
        case.closed_at = actor.now
    elif action == "reopen":
        case.closed_at = None
    for hook in transition_hooks:
        hook(actor, case, row, changes, data)
    version = _event(case, actor, "transition", changes=changes, data=data)
    note = params.get("note")
    if note and db.session.get(CaseNote, note["id"]) is None:
        db.session.add(CaseNote(id=note["id"], case_id=case.id, author_id=user.id, text=note.get("text", ""),
                                captured_at=note.get("captured_at"), created_at=actor.now,
                                event_version=version))
        data["note_id"] = note["id"]
        outcome.flags += _link_photos(case, actor, note.get("photos") or [],
                                      "rectification" if action == "resolve" else "evidence", version,
                                      note_id=note["id"])
    return outcome


def _already_done(case: Case, action: str) -> bool:
    return (action == "suspend" and case.suspended_at is not None) or (
        action == "resume" and case.suspended_at is None)


def _username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return db.session.scalar(select(User.username).where(User.id == user_id))


# ---------------------------------------------------------------------------------------------- conflicts


def resolve_conflict(actor: Actor, conflict: Conflict, choose: str, value=None) -> Conflict:
    """A reviewer settles a conflict: keep the server's value, take the field's, or set a new one. The
    choice is itself an event. Raises NotFound, Forbidden, Refused (conflict_resolved, ...)."""
    user = actor.user
    case = get_case(conflict.case_id, lock=True)
    if case is None or not case_visible(case, user):
        raise NotFound()
    if user.role not in ("reviewer", "admin"):
        raise Forbidden()
    if conflict.status != "open":
        raise Refused("conflict_resolved", status=409)
    changes: dict = {}
    if choose in ("client", "value"):
        if conflict.field == "state":
            raise Refused("state_conflict_needs_transition", status=409,
                          errors={"choose": ["settle a state conflict with a transition, then keep the server"]})
        new_value = conflict.client if choose == "client" else value
        if choose == "value":
            from app.sync.schemas import ChangesIn

            try:
                new_value = ChangesIn().load({conflict.field: value})[conflict.field]
            except Exception as exc:  # marshmallow's ValidationError carries the field messages
                messages = getattr(exc, "messages", {"value": [str(exc)]})
                raise Refused(errors={"value": messages.get(conflict.field, messages)}) from exc
            new_value = _normalise_changes({conflict.field: new_value})[conflict.field]
        old = case.field_value(conflict.field)
        if old != new_value:
            _apply_field(actor, case, conflict.field, new_value)
            changes[conflict.field] = [old, new_value]
        conflict.resolved_value = new_value
    else:
        conflict.resolved_value = case.field_value(conflict.field) if conflict.field != "state" else case.state
    conflict.status = "resolved"
    conflict.resolution = choose
    conflict.resolved_by = user.id
    conflict.resolved_at = actor.now
    _event(case, actor, "conflict_resolved", changes=changes,
           data={"conflict_id": conflict.id, "field": conflict.field, "choose": choose})
    return conflict


def case_summary(case: Case) -> dict:
    return {"id": case.id, "number": case.number, "state": case.state, "version": case.version}


def require_visible_case(case_id: str, user: User) -> Case:
    case = get_case(case_id)
    if case is None or not case_visible(case, user):
        raise NotFound()
    return case


__all__ = [
    "Actor", "Outcome", "Refused", "add_note", "create_case", "finish_changes", "follow_merges", "get_case",
    "missing_photos", "require_visible_case", "resolve_conflict", "transition", "update_case", "values_at",
]


def _cases_follow_region(region: Region, values: dict) -> None:
    """A region moved under another parent: its cases' ancestor codes follow."""
    key = getattr(Case, f"{region.level}_code")
    db.session.execute(update(Case).where(key == region.code).values(**values)
                       .execution_options(synchronize_session=False))


region_moved_hooks.append(_cases_follow_region)
transition_hooks.append(deadlines.on_transition)


def escalate_overdue(now: datetime | None = None) -> list[Case]:
    """Escalate every open case whose running stage is overdue by one handling level, once per stage, and
    record why. Safe to run again (cron): a stage already escalated is left alone."""
    from app.cases.models import CaseStage

    now = now or utcnow()
    rows = db.session.execute(
        select(Case, CaseStage).join(CaseStage, and_(CaseStage.case_id == Case.id, CaseStage.ended_at.is_(None)))
        .where(deadlines.overdue_criterion(now), CaseStage.escalated_at.is_(None), Case.suspended_at.is_(None),
               Case.state.in_(OPEN_STATES))
        .order_by(Case.due_at, Case.id).with_for_update(of=CaseStage)).all()
    actor = Actor(user=None, now=now)
    done = []
    for case, stage in rows:
        stage.escalated_at = now
        if case.level == "city":
            continue
        new_level = HANDLING_UP[case.level]
        _event(case, actor, "escalate", changes={"level": [case.level, new_level]},
               data={"reason": "overdue", "stage": stage.stage, "due_at": case.due_at.isoformat(),
                     "clock": stage.clock, "overdue_hours": deadlines.overdue_hours(stage, case, now)})
        case.level = new_level
        deadlines.on_limits_changed(case, now)
        done.append(case)
    return done
