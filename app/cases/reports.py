"""Reports: a report becomes a case. ``plan_report`` does every check and works out the case's place, flags
and first stage from reference data alone (a sync batch does it before the write lock); ``create_case``
then checks the id is new and writes the case, its event, stage and photo links."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

from flask import current_app

from app.auth.scope import in_subtree
from app.cases import deadlines, unit_of_work
from app.cases.actions import Actor, Outcome, Refused, category_row, region_row
from app.cases.duplicates import possible_duplicates
from app.cases.models import Case, CaseStage, cell_of
from app.cases.notes import link_photos
from app.geo.crs import to_wgs84
from app.regions.models import LEVELS, Region
from app.regions.services import micro_grid_index


def _round(x: float | None, places: int = 7):
    return None if x is None else round(float(x), places)


def resolve_location(loc: dict | None) -> tuple[float | None, float | None, float | None, dict | None]:
    if not loc:
        return None, None, None, None
    lat, lon = to_wgs84(loc["lat"], loc["lon"], loc.get("crs") or "wgs84")
    original = {"lat": loc["lat"], "lon": loc["lon"], "crs": loc.get("crs") or "wgs84"}
    return _round(lat), _round(lon), loc.get("accuracy_m"), original


def _micro_grid_for(actor: Actor, micro_grid_id: str | None, lat: float | None, lon: float | None,
                    accuracy: float | None) -> tuple[Region, list[str]]:
    """The micro-grid a report belongs to, and the flags its location earns. Raises Refused."""
    flags: list[str] = []
    tolerance = float(current_app.config["OUTSIDE_TOLERANCE_M"])
    index = micro_grid_index()
    if micro_grid_id:
        region = region_row(micro_grid_id)
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
    return region_row(code), flags


def _check_report_scope(actor: Actor, region: Region) -> None:
    user = actor.user
    if user.role != "admin" and not in_subtree(region, user.region):
        raise Refused("out_of_scope", status=403)


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
    category = category_row(report["category"])
    try:
        _check_reporter(user, category, report)
    except Refused as exc:
        plan.early = exc
        return plan
    lat, lon, accuracy, original = resolve_location(report.get("location"))
    try:
        region, flags = _micro_grid_for(actor, report.get("micro_grid_id"), lat, lon, accuracy)
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
    _plan_first_stage(plan, "close" if on_spot else "accept")
    return plan


def _check_reporter(user, category, report: dict) -> None:
    """May this user report this category (and close it on the spot)? Raises Refused."""
    if category is None or not category.active:
        raise Refused("unknown_category", errors={"report.category": [f"unknown category {report['category']!r}"]})
    if user.role not in (category.roles or []) and user.role != "admin":
        raise Refused("forbidden", status=403,
                      errors={"report.category": [f"a {user.role} may not report {category.code}"]})
    if report.get("handled_on_spot") and user.role == "volunteer":
        raise Refused("forbidden", status=403,
                      errors={"report.handled_on_spot": ["only grid staff close a matter on the spot"]})


def _plan_first_stage(plan: ReportPlan, name: str) -> None:
    """The first stage (as ``deadlines.start_stage`` would start it), worked out on the planned columns:
    its row, and the deadline columns of the case."""
    now = plan.now
    case = SimpleNamespace(**plan.values)
    stage = SimpleNamespace(case_id=case.id, stage=name, started_at=now, **deadlines.stage_limit(name, case),
                            consumed_s=0.0, running_since=now, due_at=None, warn_at=None, ended_at=None,
                            outcome=None, escalated_at=None)
    deadlines.schedule(stage, case, deadlines.Calendar.load(), now)  # due and warn, on both
    plan.stage = vars(stage)
    plan.values.update(stage=case.stage, stage_clock=case.stage_clock, due_at=case.due_at, warn_at=case.warn_at)


def create_case(actor: Actor, report: dict, *, skew_flag: bool = False,
                plan: ReportPlan | None = None) -> tuple[Case, Outcome]:
    """A report becomes a case in state ``reported`` (``resolved`` when handled on the spot).

    Every check that can refuse the report runs before its first row is made. ``plan`` is what
    ``plan_report`` worked out before (with the same ``actor.now``). Raises Refused (validation_failed,
    unknown_category, out_of_scope, no_micro_grid, case_exists) and Forbidden.
    """
    plan = plan or plan_report(actor, report, skew_flag=skew_flag)
    if plan.early is not None:
        raise plan.early
    uow = unit_of_work.current()
    if uow.case_exists(report["id"]):
        raise Refused("case_exists", status=409, errors={"report.id": ["a case with this id exists already"]})
    if plan.late is not None:
        raise plan.late

    values = plan.values
    case = uow.add(Case, flags=[], duplicate_of=[], **values)
    uow.new_case(case)
    lat, lon = values["lat"], values["lon"]

    outcome = Outcome(flags=list(plan.flags))
    dups = possible_duplicates(case)
    if dups:
        outcome.flags.append("possible_duplicate")
        outcome.duplicate_of = dups
        case.duplicate_of = dups
    if outcome.flags:
        case.flags = sorted(set(outcome.flags))
    location = {"lat": lat, "lon": lon, "accuracy_m": values["accuracy_m"]} if lat is not None else None
    on_spot = values["handled_on_spot"]
    version = uow.event(case, actor, "create", changes={
        "state": [None, case.state], "category": [None, case.category], "risk_level": [None, case.risk_level],
        "description": [None, case.description], "micro_grid_id": [None, case.micro_grid_code],
        "location": [None, location], "level": [None, "grid"]},
        data={"flags": outcome.flags, "duplicate_of": dups, "handled_on_spot": on_spot,
              "location_original": values["location_original"], "captured_at": values["captured_at_raw"]})
    outcome.flags += link_photos(case, actor, report.get("photos") or [], "rectification" if on_spot else "evidence",
                                 version)
    uow.add(CaseStage, **plan.stage)
    return case, outcome
