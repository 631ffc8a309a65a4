"""Case pages, categories, the workflow table, and conflicts."""

from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint
from sqlalchemy import select

from app.auth.tokens import auth_required, current_user, current_session
from app.cases import detail, services, workflow
from app.cases.conflicts import list_conflicts
from app.cases.models import Category, Conflict
from app.cases.schemas import CategoryOut, ConflictOut, ConflictQuery, ResolveIn, WorkflowRowOut
from app.errors import NotFound
from app.extensions import db

blp = Blueprint("cases", __name__, description="Cases, categories, the workflow and conflicts")


@blp.route("/categories", methods=["GET"])
@blp.response(200, CategoryOut(many=True))
@auth_required()
def categories():
    """What can be reported, and by which roles (the PWA caches it for offline use)."""
    return db.session.scalars(select(Category).where(Category.active.is_(True))
                              .order_by(Category.sort, Category.code)).all()


@blp.route("/workflow", methods=["GET"])
@blp.response(200, WorkflowRowOut(many=True))
@auth_required()
def workflow_table():
    """The case life cycle as data: every (state, action) → next state, who may, what it needs."""
    return workflow.as_list()


@blp.route("/cases/<case_id>", methods=["GET"])
@blp.doc(responses={"200": {"description": "the case with its timeline, notes, photos by role, conflicts, duplicates"}})
@auth_required()
def case_page(case_id: str):
    """One case: fields, version, state, level, flags, missing photos, photos by role, timeline (who changed
    what, when, from which device and op), conflicts and linked duplicates."""
    case = services.require_visible_case(case_id, current_user)
    return jsonify(detail.case_page(case, current_user))


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
    actor = services.Actor(user=current_user, device_id=session.device_id if session else None)
    services.resolve_conflict(actor, conflict, data["choose"], data.get("value"))
    services.finish_changes()
    db.session.commit()
    return list_conflicts(current_user, "all", conflict_id=conflict_id)[0]
