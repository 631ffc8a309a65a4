"""The admin console's rules: categories, time limits, the calendar, region boundaries (admins only)."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint

from app.admin import rules
from app.admin.schemas import (
    CalendarImportIn,
    CalendarImportOut,
    CategoryAdminOut,
    CategoryCreateIn,
    CategoryOrderIn,
    CategoryUpdateIn,
    CoverageOut,
    DryRunQuery,
    RegionsImportIn,
    RegionsPlanOut,
    SlaRuleCreateIn,
    SlaRuleOut,
    SlaRuleUpdateIn,
)
from app.auth.tokens import auth_required, current_user
from app.cases.deadlines import coverage

blp = Blueprint("admin_rules", __name__,
                description="Admin console: categories, time limits, the calendar and region boundaries")


@blp.route("/admin/categories", methods=["GET"])
@blp.response(200, CategoryAdminOut(many=True))
@auth_required("admin")
def list_categories():
    """Every category, active or not, in the report form's order."""
    return rules.list_categories()


@blp.route("/admin/categories", methods=["POST"])
@blp.arguments(CategoryCreateIn)
@blp.response(201, CategoryAdminOut)
@auth_required("admin")
def create_category(data):
    """Add a category (409 category_exists when the code is taken)."""
    return rules.create_category(current_user, data)


@blp.route("/admin/categories/order", methods=["PUT"])
@blp.arguments(CategoryOrderIn)
@blp.response(200, CategoryAdminOut(many=True))
@auth_required("admin")
def reorder_categories(data):
    """The picker order: the codes given first, in that order."""
    return rules.reorder_categories(current_user, data["codes"])


@blp.route("/admin/categories/<code>", methods=["PATCH"])
@blp.arguments(CategoryUpdateIn)
@blp.response(200, CategoryAdminOut)
@auth_required("admin")
def update_category(data, code: str):
    """Rename, choose who may report it, move, deactivate or reactivate a category."""
    return rules.update_category(current_user, code, data)


@blp.route("/admin/categories/<code>", methods=["DELETE"])
@blp.response(204)
@auth_required("admin")
def delete_category(code: str):
    """Delete an unused category; 409 category_in_use when cases or time limits name it (deactivate it)."""
    rules.delete_category(current_user, code)


@blp.route("/admin/sla-rules", methods=["GET"])
@blp.response(200, SlaRuleOut(many=True))
@auth_required("admin")
def list_sla_rules():
    """The time limits by stage, colour, category and handling level, with their clocks."""
    return rules.list_sla_rules()


@blp.route("/admin/sla-rules", methods=["POST"])
@blp.arguments(SlaRuleCreateIn)
@blp.response(201, SlaRuleOut)
@auth_required("admin")
def create_sla_rule(data):
    """A narrower time limit; it applies to stages that start from now on."""
    return rules.create_sla_rule(current_user, data)


@blp.route("/admin/sla-rules/<int:rule_id>", methods=["PATCH"])
@blp.arguments(SlaRuleUpdateIn)
@blp.response(200, SlaRuleOut)
@auth_required("admin")
def update_sla_rule(data, rule_id: int):
    """A new limit or clock; running stages keep the limit they started with."""
    return rules.update_sla_rule(current_user, rule_id, data)


@blp.route("/admin/sla-rules/<int:rule_id>", methods=["DELETE"])
@blp.response(204)
@auth_required("admin")
def delete_sla_rule(rule_id: int):
    """Remove a time limit: new stages fall back to the more general one."""
    rules.delete_sla_rule(current_user, rule_id)


@blp.route("/admin/calendar/coverage", methods=["GET"])
@blp.response(200, CoverageOut)
@auth_required("admin")
def calendar_coverage():
    """Whether the calendar knows the holidays of the next 90 days (the console's banner)."""
    return coverage()


@blp.route("/admin/calendar/import", methods=["POST"])
@blp.arguments(DryRunQuery, location="query")
@blp.arguments(CalendarImportIn)
@blp.response(200, CalendarImportOut)
@auth_required("admin")
def import_calendar(args, data):
    """Import a calendar CSV (as `flask calendar import`); `dry_run=true` (the default) writes nothing."""
    return rules.import_calendar(current_user, data["csv"], dry_run=args["dry_run"])


@blp.route("/admin/regions/import", methods=["POST"])
@blp.arguments(DryRunQuery, location="query")
@blp.arguments(RegionsImportIn)
@blp.response(200, RegionsPlanOut)
@auth_required("admin")
def import_regions(args, data):
    """What a GeoJSON import would create, rename, move and reshape; applied with `dry_run=false`."""
    return rules.import_regions(current_user, data["geojson"], dry_run=args["dry_run"],
                                tolerance_m=current_app.config["REGION_CONTAINMENT_TOLERANCE_M"])
