"""Open311 GeoReport v2 over the cases: categories are services, cases are service requests.

A case's state maps onto the spec's two statuses (closed, rejected and merged → ``closed``; the rest →
``open``); ``status_notes`` says the state and the last transition's reason in Chinese. Creating a request
is a report through ``app.cases.reports.create_case``, validated by the sync protocol's ``ReportIn``, so
an Open311 report and a phone's ``report.create`` are the same thing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import request
from marshmallow import ValidationError
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from app.auth.scope import require_case_visible, scoped_cases, subtree_criterion
from app.cases import actions, notes, reports, unit_of_work
from app.cases.models import Case, CaseEvent, CasePhoto, Category
from app.database import utcnow
from app.errors import DomainError, ValidationFailed, _flatten
from app.extensions import db
from app.regions.models import Region
from app.stats.schemas import CHINA_TZ
from app.stats.services import resolve_scope
from app.sync.schemas import ReportIn
from app.users.models import User

DEFAULT_WINDOW = timedelta(days=90)  # the spec: without dates, the last 90 days; a range spans at most 90
MAX_REQUESTS = 1000
CLOSED_STATES = ("closed", "rejected", "merged")
STATE_NAMES_ZH = {
    "reported": "已上报，待审核", "accepted": "已受理", "assigned": "已交办", "in_progress": "处置中",
    "resolved": "已整改，待核查销号", "closed": "已销号", "returned": "已退回补充", "rejected": "不予受理",
    "merged": "已合并（重复上报）",
}
# Actions that leave the state as it was: the note says what happened.
ACTION_NAMES_ZH = {"escalate": "已提级处理", "suspend": "已挂起", "resume": "已恢复办理"}
# Categories grouped the way 平安建设 work is reported (the spec's ``group``); others fall under 其他.
GROUPS_ZH = {
    "fire_hazard": "消防安全", "ebike_charging": "消防安全", "gas_safety": "消防安全",
    "public_order": "社会治安", "dispute": "社会治安",
    "road_safety": "城市管理", "sanitation": "城市管理", "illegal_building": "城市管理",
    "flood_typhoon": "应急管理", "work_safety": "应急管理",
    "vulnerable_people": "民生服务",
}
# Open311 field names for the report fields ReportIn and create_case complain about.
_FIELD_NAMES = {"category": "service_code", "report.category": "service_code", "location": "lat",
                "location.lat": "lat", "location.lon": "long", "micro_grid_id": "address_id",
                "report.micro_grid_id": "address_id", "description": "description",
                "report.handled_on_spot": "service_code"}


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- services


def list_services(user: User, jurisdiction_id: str | None) -> list[dict]:
    """The active categories as Open311 services. Raises NotFound (jurisdiction outside the scope)."""
    if jurisdiction_id is not None:
        resolve_scope(user, jurisdiction_id)
    rows = db.session.scalars(select(Category).where(Category.active.is_(True))
                              .order_by(Category.sort, Category.code))
    return [{"service_code": c.code, "service_name": c.name_zh, "description": c.name_en, "metadata": False,
             "type": "realtime", "keywords": ",".join([c.code, c.name_en, c.name_zh]),
             "group": GROUPS_ZH.get(c.code, "其他")} for c in rows]


# ---------------------------------------------------------------------------------------------- requests


def _base_query():
    micro = aliased(Region)
    town = aliased(Region)
    return (select(Case, Category.name_zh, micro.name, town.name)
            .join(Category, Category.code == Case.category)
            .outerjoin(micro, micro.code == Case.micro_grid_code)
            .outerjoin(town, town.code == Case.township_code))


def _last_transitions(ids: list[str]) -> dict[str, dict]:
    """The data of each case's last transition event (one query)."""
    if not ids:
        return {}
    last = (select(CaseEvent.case_id, func.max(CaseEvent.version).label("version"))
            .where(CaseEvent.case_id.in_(ids), CaseEvent.action == "transition")
            .group_by(CaseEvent.case_id).subquery())
    rows = db.session.execute(select(CaseEvent.case_id, CaseEvent.data).join(
        last, and_(CaseEvent.case_id == last.c.case_id, CaseEvent.version == last.c.version)))
    return {case_id: data or {} for case_id, data in rows}


def _first_photos(ids: list[str]) -> dict[str, str]:
    """Each case's first evidence photo attached to it (its bytes came from the phone that named it; one
    query)."""
    if not ids:
        return {}
    out: dict[str, str] = {}
    rows = db.session.execute(
        select(CasePhoto.case_id, CasePhoto.sha256)
        .where(CasePhoto.case_id.in_(ids), CasePhoto.role == "evidence", CasePhoto.attached.is_(True))
        .order_by(CasePhoto.case_id, CasePhoto.event_version, CasePhoto.position))
    for case_id, sha in rows:
        out.setdefault(case_id, sha)
    return out


def status_notes(state: str, transition: dict | None) -> str:
    """The state, and what the last transition said about it, in Chinese."""
    text = STATE_NAMES_ZH.get(state, state)
    transition = transition or {}
    if transition.get("action") in ACTION_NAMES_ZH:
        text += f"（{ACTION_NAMES_ZH[transition['action']]}）"
    if transition.get("reason"):
        text += f"：{transition['reason']}"
    return text


def _request_dict(case: Case, service_name: str, micro_name: str | None, town_name: str | None,
                  transition: dict | None, photo: str | None) -> dict:
    closed = case.state in CLOSED_STATES
    return {
        "service_request_id": case.id,
        "status": "closed" if closed else "open",
        "status_notes": status_notes(case.state, transition),
        "service_name": service_name,
        "service_code": case.category,
        "description": case.description or None,
        "agency_responsible": case.unit or town_name,
        "service_notice": None,
        "requested_datetime": _when(case.reported_at),
        "updated_datetime": _when(case.closed_at if case.state == "closed" and case.closed_at else case.updated_at),
        "expected_datetime": _when(case.due_at),
        "address": micro_name,
        "address_id": case.micro_grid_code,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lon,
        "media_url": f"{request.host_url}api/v1/media/{photo}" if photo else None,
    }


def _render(rows) -> list[dict]:
    ids = [row[0].id for row in rows]
    transitions = _last_transitions(ids)
    photos = _first_photos(ids)
    return [_request_dict(case, service_name, micro_name, town_name, transitions.get(case.id), photos.get(case.id))
            for case, service_name, micro_name, town_name in rows]


def list_requests(user: User, args: dict) -> list[dict]:
    """Service requests in the user's scope, newest first, at most 1000: by id (which overrides every other
    filter) or by service code, status and period (default: the last 90 days; at most 90 days).

    Raises NotFound (jurisdiction outside the scope) and ValidationFailed (a period over 90 days)."""
    stmt = scoped_cases(_base_query(), user)
    if args.get("service_request_id"):
        stmt = stmt.where(Case.id.in_([i.lower() for i in args["service_request_id"]]))
    else:
        if args.get("jurisdiction_id"):
            stmt = stmt.where(subtree_criterion(Case, resolve_scope(user, args["jurisdiction_id"])))
        start, end = args.get("start_date"), args.get("end_date")
        if start is not None and end is not None and end - start > DEFAULT_WINDOW:
            raise ValidationFailed(errors={"end_date": ["a search may span at most 90 days"]})
        if end is None:
            end = start + DEFAULT_WINDOW if start is not None else utcnow()
        if start is None:
            start = end - DEFAULT_WINDOW
        stmt = stmt.where(Case.reported_at >= start, Case.reported_at <= end)
        if args.get("service_code"):
            stmt = stmt.where(Case.category.in_(args["service_code"]))
        statuses = set(args.get("status") or ())
        if statuses == {"open"}:
            stmt = stmt.where(Case.state.not_in(CLOSED_STATES))
        elif statuses == {"closed"}:
            stmt = stmt.where(Case.state.in_(CLOSED_STATES))
    rows = db.session.execute(stmt.order_by(Case.reported_at.desc(), Case.id).limit(MAX_REQUESTS)).all()
    return _render(rows)


def get_request(user: User, request_id: str) -> list[dict]:
    """One service request as the spec's one-element list. Raises NotFound (unknown or out of scope)."""
    case = actions.get_case(request_id.lower()) if len(request_id) <= 36 else None
    require_case_visible(case, user)
    row = db.session.execute(_base_query().where(Case.id == case.id)).one()
    return _render([row])


def _open311_errors(errors: dict | None) -> dict | None:
    if not errors:
        return errors
    return {_FIELD_NAMES.get(key, key): value for key, value in errors.items()}


def create_request(user: User, device_id: str | None, data: dict) -> list[dict]:
    """A report through the same validation (ReportIn) and service (create_case) as the sync's
    ``report.create``; the micro-grid is found from the location unless ``address_id`` names one.
    A ``media_url`` is kept as a note (it is never fetched). The caller commits.

    Raises Refused (unknown_category, forbidden, out_of_scope, no_micro_grid) and ValidationFailed."""
    report = {"id": str(uuid.uuid4()), "category": data["service_code"], "risk_level": data["risk_level"],
              "description": data.get("description") or "", "micro_grid_id": data.get("address_id"),
              "location": None if data.get("lat") is None else
              {"lat": data["lat"], "lon": data["long"], "crs": "wgs84"}}
    try:
        report = ReportIn().load(report)
    except ValidationError as exc:
        raise ValidationFailed(errors=_open311_errors(_flatten(exc.messages))) from exc
    actor = actions.Actor(user=user, device_id=device_id)
    try:
        case, outcome = reports.create_case(actor, report)
        if data.get("media_url"):
            notes.add_note(actor, case, {"id": str(uuid.uuid4()), "text": f"照片链接：{data['media_url']}",
                                         "photos": []})
    except DomainError as exc:
        exc.errors = _open311_errors(exc.errors)
        raise
    unit_of_work.finish()
    town = db.session.get(Region, case.township_code) if case.township_code else None
    notice = f"已收到您的上报（编号 {case.number}），将由{town.name if town else '属地'}审核受理。"
    if "possible_duplicate" in outcome.flags:
        notice += "附近已有同类事件，可能为重复上报。"
    return [{"service_request_id": case.id, "service_notice": notice}]
