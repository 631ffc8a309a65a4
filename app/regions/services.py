"""Regions: importing boundary files, and finding which micro-grid holds a point.

The point index is an STRtree over prepared micro-grid polygons, built once per process and rebuilt when
the regions table changes (checked at most every ``INDEX_CHECK_S`` seconds, so several worker processes
pick up an import without restarting).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.validation import explain_validity
from sqlalchemy import func, select, update

from app.database import utcnow
from app.errors import DomainError
from app.extensions import db
from app.regions.models import LEVELS, Region, level_rank

INDEX_CHECK_S = 10.0
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


class RegionImportFailed(DomainError):
    status = 422
    code = "region_import_failed"

    def __init__(self, problems: list[str]):
        super().__init__(errors={"features": problems})
        self.problems = problems


# ---------------------------------------------------------------------------------------------- geometry


def to_local_metres(geom, lat0: float):
    """The geometry in metres around latitude ``lat0`` (equirectangular; exact enough for a few km)."""
    kx = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))
    return shapely.transform(geom, lambda xy: xy * np.array([kx, M_PER_DEG_LAT]))


def distance_m(geom, lat: float, lon: float) -> float:
    """Metres from (lat, lon) to the geometry (0 inside)."""
    if shapely.intersects_xy(geom, lon, lat):
        return 0.0
    return _exact_distance_m(geom, lat, lon)


def farther_than(geom, lat: float, lon: float, metres: float) -> bool:
    """Whether (lat, lon) lies more than ``metres`` from the geometry. The distance in degrees bounds the
    distance in metres from both sides (a degree of longitude is shorter than one of latitude), so the
    exact projection is needed only near the threshold."""
    if shapely.intersects_xy(geom, lon, lat):
        return False
    d_deg = float(shapely.distance(geom, shapely.Point(lon, lat)))
    low = d_deg * M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
    high = d_deg * max(M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR) * 1.01
    if low > metres:
        return True
    if high <= metres:
        return False
    return _exact_distance_m(geom, lat, lon) > metres


def _exact_distance_m(geom, lat: float, lon: float) -> float:
    local = to_local_metres(geom, lat)
    kx = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
    return float(shapely.distance(local, shapely.Point(lon * kx, lat * M_PER_DEG_LAT)))


# ---------------------------------------------------------------------------------------------- import


@dataclass
class _Row:
    index: int
    code: str
    name: str
    level: str
    parent: str | None
    geom: object | None
    geometry_json: str | None
    codes: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"feature {self.index} ({self.code or '?'})"


class _Refused(ValueError):
    """One feature's problem: it is left out and the problem listed."""


def _parse_geometry(raw) -> tuple[object | None, str | None]:
    """The feature's polygon (shapely) and its compact GeoJSON, or (None, None) for a region without one."""
    if raw is None:
        return None, None
    try:
        if raw.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"geometry type {raw.get('type')!r} is not Polygon or MultiPolygon")
        geom = shape(raw)
        if geom.is_empty:
            raise ValueError("empty geometry")
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, shapely.errors.GEOSException) as exc:
        raise _Refused(f"invalid geometry: {exc}") from exc
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise _Refused("coordinates outside WGS-84 longitude/latitude ranges")
    if not geom.is_valid:
        raise _Refused(f"invalid polygon: {explain_validity(geom)}")
    return geom, json.dumps(mapping(geom), separators=(",", ":"))


def _parse_feature(i: int, feature, seen: dict[str, int], problems: list[str]) -> _Row:
    """One feature as a row; raises _Refused (with its label) for a feature that cannot be imported. A bad
    name is listed but the feature still checked, so that every problem of the file shows at once."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise _Refused(f"feature {i}: not a GeoJSON Feature")
    props = feature.get("properties") or {}
    code, name, level, parent = (props.get(k) for k in ("code", "name", "level", "parent"))
    if not isinstance(code, str) or not code.strip() or len(code) > 32:
        raise _Refused(f"feature {i}: properties.code must be a string of 1-32 characters")
    label = f"feature {i} ({code})"
    if code in seen:
        raise _Refused(f"{label}: code appears twice in the file (also feature {seen[code]})")
    seen[code] = i
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append(f"{label}: properties.name must be a string of 1-100 characters")
    if level not in LEVELS:
        raise _Refused(f"{label}: properties.level must be one of {', '.join(LEVELS)}")
    if parent is not None and (not isinstance(parent, str) or not parent):
        raise _Refused(f"{label}: properties.parent must be a region code or null")
    if parent == code:
        raise _Refused(f"{label}: a region cannot be its own parent")
    try:
        geom, geometry_json = _parse_geometry(feature.get("geometry"))
    except _Refused as exc:
        raise _Refused(f"{label}: {exc}") from exc
    return _Row(i, code, (name or "").strip(), level, parent, geom, geometry_json)


def _parse_features(doc) -> tuple[list[_Row], list[str]]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        return [], ["the file is not a GeoJSON FeatureCollection"]
    problems: list[str] = []
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for i, feature in enumerate(doc["features"]):
        try:
            rows.append(_parse_feature(i, feature, seen, problems))
        except _Refused as exc:
            problems.append(str(exc))
    return rows, problems


class _Tree:
    """The regions of a file and the parents it names that are already in the database."""

    def __init__(self, rows: list[_Row]):
        self.rows = rows
        self.by_code = {row.code: row for row in rows}
        wanted = {row.parent for row in rows if row.parent and row.parent not in self.by_code}
        self.existing = {r.code: r for r in db.session.scalars(select(Region).where(Region.code.in_(wanted)))} \
            if wanted else {}

    def parent_of(self, row: _Row):
        return self.by_code.get(row.parent) or self.existing.get(row.parent)

    def placement_problem(self, row: _Row, tolerance_m: float) -> str | None:
        """Why the row cannot lie where the file puts it, or None."""
        if row.parent is None:
            return None if row.level == "city" else f"{row.label}: a {row.level} needs a parent"
        parent = self.parent_of(row)
        if parent is None:
            return f"{row.label}: unknown parent {row.parent!r}"
        if level_rank(parent.level) >= level_rank(row.level):
            return (f"{row.label}: level out of order: a {row.level} cannot lie under "
                    f"the {parent.level} {row.parent!r}")
        parent_geom = parent.geom if isinstance(parent, _Row) else (
            shape(json.loads(parent.geometry)) if parent.geometry else None)
        if row.geom is None or parent_geom is None:
            return None
        lat0 = row.geom.centroid.y
        outside = to_local_metres(row.geom, lat0).difference(to_local_metres(parent_geom, lat0).buffer(tolerance_m))
        if not outside.is_empty and outside.area > 0.01:
            return (f"{row.label}: lies outside its parent {row.parent!r} by "
                    f"{outside.area:.0f} m² (tolerance {tolerance_m:g} m)")
        return None

    def resolve(self, row: _Row, trail: tuple = ()) -> dict | None:
        """The row's ancestor codes, following parents through the file and the database; None on a loop."""
        if row.codes:
            return row.codes
        if row.code in trail:
            return None
        codes = {f"{level}_code": None for level in LEVELS}
        if row.parent is not None:
            parent = self.parent_of(row)
            if parent is None:
                return None
            parent_codes = self.resolve(parent, trail + (row.code,)) if isinstance(parent, _Row) \
                else parent.level_codes()
            if parent_codes is None:
                return None
            codes.update(parent_codes)
        codes[f"{row.level}_code"] = row.code
        row.codes = codes
        return codes


def _write(row: _Row, region: Region, now) -> None:
    region.name = row.name
    region.level = row.level
    region.parent_code = row.parent
    for key, value in row.codes.items():
        setattr(region, key, value)
    region.geometry = row.geometry_json
    if row.geom is not None:
        region.min_lon, region.min_lat, region.max_lon, region.max_lat = row.geom.bounds
    else:
        region.min_lon = region.min_lat = region.max_lon = region.max_lat = None
    region.updated_at = now


def _validated(doc, tolerance_m: float, progress: Callable[[Iterable], Iterable]) -> tuple[list[_Row], dict]:
    """The file's rows, each with its ancestors' codes, and the regions of the same codes already stored.
    Raises RegionImportFailed listing every problem (nothing is written then)."""
    rows, problems = _parse_features(doc)
    tree = _Tree(rows)
    current = {r.code: r for r in db.session.scalars(select(Region).where(Region.code.in_(list(tree.by_code))))} \
        if tree.by_code else {}
    problems += [p for p in (tree.placement_problem(row, tolerance_m) for row in progress(rows)) if p]
    if not problems:
        problems += [f"{row.label}: its chain of parents loops back on itself" for row in rows
                     if tree.resolve(row) is None]
    problems += [f"{row.label}: level cannot change from {current[row.code].level} to {row.level} on re-import"
                 for row in rows if row.code in current and current[row.code].level != row.level]
    if problems:
        db.session.rollback()
        raise RegionImportFailed(problems)
    return rows, current


def _changes(row: _Row, region: Region) -> list[str]:
    """How a stored region differs from the file's: renamed, moved (another parent), reshaped."""
    found = []
    if region.name != row.name:
        found.append("renamed")
    if region.level_codes() != row.codes:
        found.append("moved")
    old_geom = shape(json.loads(region.geometry)) if region.geometry else None
    if (old_geom is None) != (row.geom is None) or (old_geom is not None and not old_geom.equals(row.geom)):
        found.append("reshaped")
    return found


def plan_import(doc, *, tolerance_m: float = 5.0) -> dict:
    """What importing the file would do, without writing: each region to be ``created``, ``renamed``,
    ``moved`` (another parent) or ``reshaped`` (another boundary), and how many stay ``unchanged``, with the
    file's features (for a map preview) and the stored boundaries they replace. Raises RegionImportFailed."""
    rows, current = _validated(doc, tolerance_m, lambda it: it)
    plan = {"created": [], "renamed": [], "moved": [], "reshaped": [], "unchanged": 0}
    before = []
    for row in rows:
        region = current.get(row.code)
        item = {"code": row.code, "name": row.name, "level": row.level, "parent": row.parent}
        if region is None:
            plan["created"].append(item)
            continue
        changes = _changes(row, region)
        extra = {"renamed": {"old_name": region.name}, "moved": {"old_parent": region.parent_code}, "reshaped": {}}
        for change in changes:
            plan[change].append({**item, **extra[change]})
        if "reshaped" in changes:
            before.append(region)
        plan["unchanged"] += not changes
    plan["features"] = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": row.code,
         "properties": {"code": row.code, "name": row.name, "level": row.level, "parent": row.parent},
         "geometry": mapping(row.geom) if row.geom is not None else None} for row in rows]}
    plan["before"] = feature_collection(before)
    return plan


def import_regions(doc, *, tolerance_m: float = 5.0, progress: Callable[[Iterable], Iterable] = lambda it: it,
                   commit: bool = True) -> dict:
    """Validate a FeatureCollection of regions completely, then create or update them in one transaction
    (committed unless ``commit=False``: the caller commits, with its own record of the change).

    Parents may come later in the file or already be in the database. Raises RegionImportFailed listing
    every problem (nothing is written then).
    """
    rows, current = _validated(doc, tolerance_m, progress)
    created = updated = 0
    now = utcnow()
    moved: list[Region] = []
    # Parents first, so foreign keys hold at every insert.
    for row in sorted(rows, key=lambda r: level_rank(r.level)):
        region = current.get(row.code)
        if region is None:
            region = Region(code=row.code)
            db.session.add(region)
            created += 1
        else:
            updated += 1
            if region.level_codes() != row.codes:
                moved.append(region)
        _write(row, region, now)
        db.session.flush()
    for region in moved:
        propagate_move(region)
    if commit:
        db.session.commit()
        invalidate_index()
    return {"created": created, "updated": updated, "moved": len(moved)}


def propagate_move(region: Region) -> None:
    """A region moved under another parent: its descendants (and their cases) follow."""
    from app.regions.hooks import region_moved_hooks

    above = LEVELS[: level_rank(region.level)]
    values = {f"{level}_code": getattr(region, f"{level}_code") for level in above}
    key = getattr(Region, f"{region.level}_code")
    db.session.execute(update(Region).where(key == region.code).values(**values)
                       .execution_options(synchronize_session=False))
    for hook in region_moved_hooks:
        hook(region, values)


# ---------------------------------------------------------------------------------------------- lookup


class MicroGridIndex:
    """An STRtree over the micro-grid polygons, for "which micro-grid holds this point?"."""

    def __init__(self, codes: list[str], geoms: list):
        self.codes = codes
        self.geoms = np.array(geoms, dtype=object)
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        self.by_code = dict(zip(codes, geoms))

    def locate(self, lat: float, lon: float) -> str | None:
        """The code of the micro-grid holding the point; on a shared edge, the smallest code."""
        hits = self.tree.query(shapely.Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        if len(hits) == 1:
            return self.codes[hits[0]]
        return min(self.codes[i] for i in hits)

    def locate_many(self, lats, lons) -> list[str | None]:
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, geom_idx = self.tree.query(points, predicate="intersects")
        out: list[str | None] = [None] * len(points)
        for p, g in zip(point_idx.tolist(), geom_idx.tolist()):
            code = self.codes[g]
            if out[p] is None or code < out[p]:
                out[p] = code
        return out

    def nearest(self, lat: float, lon: float, max_m: float) -> str | None:
        """The closest micro-grid within ``max_m`` metres of the point, if any."""
        max_deg = max_m / (M_PER_DEG_LON_EQUATOR * max(math.cos(math.radians(lat)), 0.01))
        hits = self.tree.query(shapely.Point(lon, lat), predicate="dwithin", distance=max_deg)
        best = None
        for i in hits:
            d = distance_m(self.geoms[i], lat, lon)
            if d <= max_m and (best is None or d < best[0]):
                best = (d, self.codes[i])
        return best[1] if best else None

    def distance_m(self, code: str, lat: float, lon: float) -> float | None:
        geom = self.by_code.get(code)
        return None if geom is None else distance_m(geom, lat, lon)

    def farther_than(self, code: str, lat: float, lon: float, metres: float) -> bool | None:
        geom = self.by_code.get(code)
        return None if geom is None else farther_than(geom, lat, lon, metres)


_lock = threading.Lock()
_index: MicroGridIndex | None = None
_index_stamp: tuple | None = None
_index_checked = 0.0


def _stamp() -> tuple:
    row = db.session.execute(
        select(func.count(Region.code), func.max(Region.updated_at)).where(Region.level == "micro_grid")
    ).one()
    return (row[0], str(row[1]))


def invalidate_index() -> None:
    global _index, _index_stamp, _index_checked
    with _lock:
        _index, _index_stamp, _index_checked = None, None, 0.0


def micro_grid_index() -> MicroGridIndex:
    """The process's index, rebuilt if the micro-grids changed since it was built."""
    global _index, _index_stamp, _index_checked
    now = time.monotonic()
    with _lock:
        if _index is not None and now - _index_checked < INDEX_CHECK_S:
            return _index
    stamp = _stamp()
    with _lock:
        if _index is not None and stamp == _index_stamp:
            _index_checked = now
            return _index
    rows = db.session.execute(
        select(Region.code, Region.geometry).where(Region.level == "micro_grid", Region.geometry.is_not(None))
        .order_by(Region.code)
    ).all()
    index = MicroGridIndex([r.code for r in rows], [shape(json.loads(r.geometry)) for r in rows])
    with _lock:
        _index, _index_stamp, _index_checked = index, stamp, now
    return index


def locate(lat: float, lon: float) -> Region | None:
    """The micro-grid region holding (lat, lon), or None."""
    code = micro_grid_index().locate(lat, lon)
    return db.session.get(Region, code) if code else None


def subtree(root: Region, level: str | None = None) -> list[Region]:
    stmt = select(Region).where(getattr(Region, f"{root.level}_code") == root.code)
    if level:
        stmt = stmt.where(Region.level == level)
    return list(db.session.scalars(stmt.order_by(Region.code)))


def children(region: Region) -> list[Region]:
    return list(db.session.scalars(select(Region).where(Region.parent_code == region.code)
                                   .order_by(Region.code)))


def feature_collection(regions: list[Region]) -> dict:
    """GeoJSON of the regions (geometry as stored)."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r.code,
         "properties": {"code": r.code, "name": r.name, "level": r.level, "parent": r.parent_code},
         "geometry": json.loads(r.geometry) if r.geometry else None}
        for r in regions]}
