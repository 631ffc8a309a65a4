"""Case pages, categories, the workflow table, and conflicts."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from sqlalchemy import select

from app.auth.scope import case_visible
from app.auth.tokens import auth_required, current_session, current_user
from app.cases import (
    actions,
    assignees,
    deadlines,
    detail,
    exports,
    merge,
    queue,
    transitions,
    unit_of_work,
    watch,
    workflow,
)
from app.cases.conflicts import list_conflicts
from app.cases.models import Case, Category, Conflict
from app.cases.schemas import (
    CALENDAR_DEFAULT_DAYS,
    BulkTransitionIn,
    CalendarOut,
    CalendarQuery,
    CategoryOut,
    ConflictOut,
    ConflictQuery,
    ExportQuery,
    QueueQuery,
    ResolveIn,
    TransitionIn,
    WorkflowRowOut,
)
from app.database import utcnow
from app.errors import DomainError, NotFound, message
from app.extensions import db

blp = Blueprint("cases", __name__, description="Cases, categories, the workflow and conflicts")


@blp.route("/categories", methods=["GET"])
@blp.response(200, CategoryOut(many=True))
@auth_required()
def categories():
    """What can be reported, and by which roles (the PWA caches it for offline use)."""
    return db.session.scalars(select(Category).where(Category.active.is_(True))
                              .order_by(Category.sort, Category.code)).all()


@blp.route("/calendar", methods=["GET"])
@blp.arguments(CalendarQuery, location="query")
@blp.response(200, CalendarOut)
@auth_required()
def calendar(args):
    """Days off (放假) and make-up workdays (调休上班) from ``from`` to ``to`` (both included) with their names,
    whether the calendar knows the State Council's arrangement for the whole period, and the office hours
    that working time counts."""
    span = timedelta(days=CALENDAR_DEFAULT_DAYS)
    start = args["start"] or (args["end"] - span if args["end"] else datetime.now(deadlines.CHINA).date())
    end = args["end"] or start + span
    known = deadlines.covered_years()
    missing = [y for y in range(start.year, end.year + 1) if y not in known]
    days = [{"date": d.day, "kind": "workday" if d.workday else "holiday", "workday": d.workday, "name": d.name,
             "weekday": d.day.isoweekday()} for d in deadlines.calendar_days(start, end)]
    return {"from_": start, "to": end, "days": days, "covered": not missing, "missing_years": missing,
            "office_hours": deadlines.configured_office_hours().describe()}


@blp.route("/workflow", methods=["GET"])
@blp.response(200, WorkflowRowOut(many=True))
@auth_required()
def workflow_table():
    """The case life cycle as data: every (state, action) → next state, who may, what it needs."""
    return workflow.as_list()


@blp.route("/cases", methods=["GET"])
@blp.arguments(QueueQuery, location="query")
@blp.doc(responses={"200": {"description": "a page of the review queue; the next page's cursor is in the "
                                           "X-Next-Cursor header (and a Link rel=next), absent on the last page"}})
@auth_required()
def case_queue(args):
    """The review queue: my cases, filtered, sorted, in pages of ``limit`` cut by an opaque ``cursor``."""
    items, next_cursor = queue.queue_page(current_user, args)
    response = jsonify(items)
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
        response.headers["Link"] = f'<{_next_url(next_cursor)}>; rel="next"'
    return response


def _next_url(cursor: str) -> str:
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", cursor)]
    return f"{request.path}?{urlencode(pairs)}"


@blp.route("/cases/export", methods=["GET"])
@blp.arguments(ExportQuery, location="query")
@blp.doc(responses={"200": {"description": "the filtered queue as a CSV or XLSX ledger (台账) or a GeoJSON layer"}})
@auth_required()
def case_export(args):
    """The filtered queue as a file: ``format=csv|xlsx|geojson`` with the queue's filters, every row in scope
    (up to a hard cap), streamed."""
    return exports.export(current_user, args, args["format"])


@blp.route("/cases/<case_id>/transitions", methods=["POST"])
@blp.arguments(TransitionIn)
@blp.doc(responses={"200": {"description": "applied or conflict, with the case page"}})
@auth_required()
def case_transition(data, case_id: str):
    """Move one case through the workflow online, exactly as a phone's ``case.transition`` op would: a stale
    ``base_version`` is merged (already done: no-op; impossible now: a conflict), never overwritten."""
    case = actions.get_case(case_id.lower(), lock=True)
    if case is None or not case_visible(case, current_user):
        raise NotFound()
    case, redirected = actions.follow_merges(case, lock=True)
    params = {k: data.get(k) for k in ("note", "reason", "assignee", "unit", "target")}
    try:
        outcome = transitions.transition(_actor(), case, data["action"], data["base_version"], params,
                                      redirected=redirected)
        unit_of_work.finish()
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if exc.code == "out_of_scope":  # the case it was merged into lies outside the caller's scope
            raise NotFound() from None
        raise
    return jsonify({"status": outcome.status, "flags": outcome.flags, "conflicts": outcome.conflicts,
                    **_clock(case), "case": detail.case_page(case, current_user)})


@blp.route("/cases/transitions", methods=["POST"])
@blp.arguments(BulkTransitionIn)
@blp.doc(responses={"200": {"description": "one result per case, in the order sent"}})
@auth_required("reviewer", "admin")
def bulk_transition(data):
    """Accept, return or reject many cases at once. Each case is applied (and audited) on its own: one that
    fails is answered ``rejected`` and the others go on. Every case must be visible to the caller (else 404)."""
    ids = [c["id"].lower() for c in data["cases"]]
    # Lock in id order, as the sync does, so two bulk calls over the same cases cannot deadlock.
    found = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_(ids)).order_by(Case.id)
                                                 .with_for_update())}
    if any(cid not in found or not case_visible(found[cid], current_user) for cid in ids):
        raise NotFound()
    actor = _actor()
    params = {"reason": data.get("reason")}
    results = []
    for entry, cid in zip(data["cases"], ids):
        touched = set(db.session.info.get("gridcase_touched", set()))
        savepoint = db.session.begin_nested()
        try:
            case, redirected = actions.follow_merges(found[cid], lock=True)
            outcome = transitions.transition(actor, case, data["action"], entry["base_version"], params,
                                          redirected=redirected)
            db.session.flush()
            savepoint.commit()
        except DomainError as exc:
            savepoint.rollback()
            db.session.info["gridcase_touched"] = touched
            result = {"id": cid, "status": "rejected", "code": exc.code, "detail": message(exc.code)}
            if exc.errors:
                result["errors"] = exc.errors
            results.append(result)
            continue
        result = {"id": cid, "status": outcome.status, "case_version": case.version, "flags": outcome.flags}
        if case.id != cid:
            result["case_id"] = case.id
        if outcome.conflicts:
            result["conflicts"] = outcome.conflicts
        results.append(result)
    unit_of_work.finish()
    db.session.commit()
    return jsonify(results)


def _actor() -> actions.Actor:
    session = current_session()
    return actions.Actor(user=current_user, device_id=session.device_id if session else None)


def _clock(case: Case) -> dict:
    """The running stage's clock, beside the case page."""
    return {"stage": case.stage, "clock": case.stage_clock, "due_at": case.due_at.isoformat() if case.due_at else None,
            "light": deadlines.light(case, utcnow())}


@blp.route("/cases/<case_id>", methods=["GET"])
@blp.doc(responses={"200": {"description": "the case with its timeline, notes, photos by role, conflicts, duplicates"}})
@auth_required()
def case_page(case_id: str):
    """One case: fields, version, state, level, flags, missing photos, photos by role, timeline (who changed
    what, when, from which device and op), conflicts and linked duplicates."""
    case = actions.require_visible_case(case_id, current_user)
    return jsonify(detail.case_page(case, current_user))


@blp.route("/cases/watch", methods=["GET"])
@blp.doc(responses={
    "200": {"description": "something in my scope changed: the new `ETag`, and counts for the app's notice "
                           "(`assigned_open`, `returned_mine`, `awaiting_review` for reviewers, `poll_s`)"},
    "304": {"description": "nothing in my scope changed since the `If-None-Match` ETag"}})
@auth_required()
def case_watch():
    """Anything new for me? The open app asks every ``poll_s`` seconds with ``If-None-Match``; ``304`` while
    no case I may see changed. When it changes the app pulls (``GET /sync/changes``) and says what came."""
    tag = watch.etag(current_user)
    if tag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        response = current_app.response_class(status=304)
    else:
        response = jsonify({"etag": tag, **watch.summary(current_user)})
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@blp.route("/cases/<case_id>/assignees", methods=["GET"])
@blp.doc(responses={"200": {"description": "`people` who may take the case (its grid's first) with their open "
                                           "workload, and the `deadline` the assignee will work to"}})
@auth_required("reviewer", "admin")
def case_assignees(case_id: str):
    """Who may take this case (交办): grid workers of its grid, then of its township, with display names and
    open cases; and the running stage's deadline."""
    case = actions.require_visible_case(case_id, current_user)
    return jsonify(assignees.candidates(case, current_user, utcnow()))


@blp.route("/conflicts", methods=["GET"])
@blp.arguments(ConflictQuery, location="query")
@blp.response(200, ConflictOut(many=True))
@auth_required("reviewer", "admin")
def conflicts(args):
    """Conflicts on cases of my region, oldest first."""
    return list_conflicts(current_user, args["status"], args["case_id"], args["limit"])


@blp.route("/conflicts/<conflict_id>/resolve", methods=["POST"])
@blp.arguments(ResolveIn)
@blp.response(200, ConflictOut)
@auth_required("reviewer", "admin")
def resolve(data, conflict_id: str):
    """Settle a conflict: keep the server's value, take the field's, or set a new one (an event)."""
    conflict = db.session.get(Conflict, conflict_id)
    if conflict is None:
        raise NotFound()
    session = current_session()
    actor = actions.Actor(user=current_user, device_id=session.device_id if session else None)
    merge.resolve_conflict(actor, conflict, data["choose"], data.get("value"))
    unit_of_work.finish()
    db.session.commit()
    return list_conflicts(current_user, "all", conflict_id=conflict_id)[0]
