"""Possible duplicates: open cases of the same category within 50 m and 72 h of a report.

One report asks the database (an index look-up, never a scan). A sync batch reads the neighbours of all
its reports once before the write lock (``read_neighbours``) and brings them up to date under it
(``use_neighbours``); kept because it turns a query per report into one per batch (bench/RESULTS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, bindparam, func, or_, select

from app.cases import unit_of_work
from app.cases.models import OPEN_STATES, Case, cell_of
from app.extensions import db
from app.geo.distance import haversine_m

DUPLICATE_RADIUS_M = 50.0
DUPLICATE_WINDOW = timedelta(hours=72)

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
    unit_of_work.current().cache["neighbours"] = (found.places, by_cell)


def _nearby(by_cell: dict, case: Case, since: datetime):
    for dlat in (-1, 0, 1):
        for dlon in (-1, 0, 1):
            for cid, lat, lon, reported in by_cell.get((case.category, case.cell_lat + dlat, case.cell_lon + dlon), ()):
                if cid != case.id and reported >= since:
                    yield cid, lat, lon


def possible_duplicates(case: Case) -> list[str]:
    """Open cases of the same category within 50 m and 72 h: an index look-up, never a scan."""
    if case.lat is None:
        return []
    cl, cn = case.cell_lat, case.cell_lon
    since = case.reported_at - DUPLICATE_WINDOW
    uow = unit_of_work.current()
    # this transaction's own new cases are not in the database yet
    rows = list(_nearby(uow.new_by_cell, case, since))
    places, neighbours = uow.cache.get("neighbours", ((), None))
    if neighbours is not None and (case.category, case.lat, case.lon) in places:
        rows += _nearby(neighbours, case, since)
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
