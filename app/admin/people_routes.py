"""The admin console's people: list, create, import a roster, disable, enable, move, reset."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint

from app.admin import people
from app.admin.people_schemas import (
    MoveIn,
    PeopleQuery,
    PersonIn,
    PersonOut,
    PersonWithCodeOut,
    RosterFile,
    RosterOut,
    RosterQuery,
)
from app.auth.tokens import auth_required, current_user

blp = Blueprint("admin_people", __name__, description="Admin console: people and their accounts")


def _with_code(user, code) -> dict:
    return {**people.one_person(user), "activation_code": code,
            "activation_expires_days": current_app.config["ACTIVATION_CODE_DAYS"]}


@blp.route("/admin/people", methods=["GET"])
@blp.arguments(PeopleQuery, location="query")
@blp.response(200, PersonOut(many=True))
@auth_required("admin", "reviewer")
def list_people(args):
    """People in my scope: role, region name path, phone, last contact and unsent work."""
    return people.list_people(current_user, **args)


@blp.route("/admin/people", methods=["POST"])
@blp.arguments(PersonIn)
@blp.response(201, PersonWithCodeOut)
@auth_required("admin", "reviewer")
def create_person(data):
    """A new account with a one-time activation code (answered only here)."""
    return _with_code(*people.create_person(current_user, data))


@blp.route("/admin/people/<int:user_id>", methods=["GET"])
@blp.response(200, PersonOut)
@auth_required("admin", "reviewer")
def get_person(user_id: int):
    return people.one_person(people.get_person(current_user, user_id))


@blp.route("/admin/people/<int:user_id>/disable", methods=["POST"])
@blp.response(200, PersonOut)
@auth_required("admin", "reviewer")
def disable_person(user_id: int):
    """Disable: every session ends at once and login is refused."""
    return people.one_person(people.disable_person(current_user, people.get_person(current_user, user_id)))


@blp.route("/admin/people/<int:user_id>/enable", methods=["POST"])
@blp.response(200, PersonOut)
@auth_required("admin", "reviewer")
def enable_person(user_id: int):
    return people.one_person(people.enable_person(current_user, people.get_person(current_user, user_id)))


@blp.route("/admin/people/<int:user_id>/move", methods=["POST"])
@blp.arguments(MoveIn)
@blp.response(200, PersonOut)
@auth_required("admin", "reviewer")
def move_person(data, user_id: int):
    """Move to another region in my scope (code or name path)."""
    target = people.get_person(current_user, user_id)
    return people.one_person(people.move_person(current_user, target, data["region"]))


@blp.route("/admin/people/<int:user_id>/reset", methods=["POST"])
@blp.response(200, PersonWithCodeOut)
@auth_required("admin", "reviewer")
def reset_person(user_id: int):
    """Force a new login on every phone (outboxes stay on the phones) with a new activation code."""
    return _with_code(*people.reset_person(current_user, people.get_person(current_user, user_id)))


@blp.route("/admin/people/roster", methods=["POST"])
@blp.arguments(RosterQuery, location="query")
@blp.arguments(RosterFile, location="files")
@blp.response(200, RosterOut)
@auth_required("admin", "reviewer")
def import_roster(args, files):
    """Import a roster (花名册, CSV or XLSX: username, display name, phone, role, region by code or name
    path). ``dry_run=true`` (the default) lists every bad row and writes nothing; the real import is all or
    nothing and answers each account's activation code once."""
    upload = request.files["file"]
    rows = people.read_roster(upload.filename, upload.read(current_app.config["ROSTER_MAX_BYTES"] + 1))
    roster = people.Roster(current_user, rows)
    days = current_app.config["ACTIVATION_CODE_DAYS"]
    if args["dry_run"]:
        problems = roster.check()
        return {"dry_run": True, "rows": len(rows), "bad_rows": len({p["row"] for p in problems}),
                "problems": problems, "created": [], "codes_csv": None, "activation_expires_days": days}
    created = roster.apply()
    return {"dry_run": False, "rows": len(rows), "bad_rows": 0, "problems": [], "activation_expires_days": days,
            "created": [{"id": u.id, "username": u.username, "display_name": u.display_name, "region": u.region_code,
                         "activation_code": code} for u, code in created],
            "codes_csv": people.codes_csv(created)}
