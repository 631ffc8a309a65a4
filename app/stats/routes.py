"""The figures of a region and period, and volunteer points. Importing this module registers the points
transition hook (app.stats.points), so the app wires it when it registers the blueprint."""

from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint

from app.auth.tokens import auth_required, current_user
from app.stats import points, services
from app.stats.schemas import LedgerQuery, PeriodQuery, PointsQuery

blp = Blueprint("stats", __name__, description="Figures by region and period; volunteer points (积分制)")


@blp.route("/stats", methods=["GET"])
@auth_required("reviewer", "admin", "grid_worker")  # before the query is judged: no token is a 401, never a 422
@blp.arguments(PeriodQuery, location="query")
@blp.doc(responses={"200": {"description": "close-out, on-time and grid-resolution rates, median and p90 hours "
                                           "to close, overdue, counts by state, colour, category and child region, "
                                           "devices holding unsent reports"}})
def stats(args):
    """Figures of a region in my scope (default: my own) over a period (default: the last 30 days)."""
    return jsonify(services.figures(current_user, args["region"], args["start"], args["end"]))


@blp.route("/points", methods=["GET"])
@auth_required("volunteer", "reviewer", "admin")  # before the query is judged: no token is a 401, never a 422
@blp.arguments(PointsQuery, location="query")
@blp.doc(responses={"200": {"description": "a volunteer's own points and ledger, or a reviewer's leaderboard"}})
def points_view(args):
    """A volunteer: my points and ledger entries in the period. A reviewer or admin: the volunteers of a
    region in my scope ranked by points earned in the period: [{username, display_name, points,
    confirmed_reports}]."""
    region = services.resolve_scope(current_user, args["region"])
    start, end = services.resolve_period(args["start"], args["end"])
    if current_user.role == "volunteer":
        return jsonify(points.own_points(current_user, start, end, args["limit"]))
    return jsonify(points.leaderboard(region, start, end, args["limit"]))


@blp.route("/points/ledger", methods=["GET"])
@auth_required("volunteer")
@blp.arguments(LedgerQuery, location="query")
@blp.doc(responses={"200": {"description": "my points total and every ledger entry, newest first"}})
def points_ledger(args):
    """A volunteer's whole points ledger (我的积分): the total, each entry with its case and reason."""
    return jsonify(points.ledger(current_user, args["limit"], args["before"]))
