from marshmallow import Schema, fields, validate


class AdminEventOut(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.Integer()
    actor_username = fields.String(attribute="actor.username")
    actor_display_name = fields.String(attribute="actor.display_name")
    action = fields.String(metadata={"example": "user.disable"})
    target_type = fields.String(metadata={"example": "user"})
    target_id = fields.String(allow_none=True)
    region_code = fields.String(allow_none=True)
    summary = fields.String(metadata={"example": "张网格员 停用"})
    changes = fields.Dict(metadata={"example": {"disabled": [False, True]}})


class AdminEventQuery(Schema):
    action = fields.String(validate=validate.Length(max=48))
    target_type = fields.String(validate=validate.Length(max=24))
    target_id = fields.String(validate=validate.Length(max=64))
    before = fields.DateTime(metadata={"description": "events strictly older than this (paging)"})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


# ---------------------------------------------------------------------------------------------- rules

ROLES = ("volunteer", "grid_worker", "reviewer", "admin")
RISKS = ("red", "yellow", "blue")
STAGES = ("accept", "close")
CLOCKS = ("natural", "working")
CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$", error="lower-case letters, digits and _, at most 32")
LEVEL = validate.OneOf(("grid", "village", "township", "city"))


class CategoryAdminOut(Schema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()
    roles = fields.List(fields.String())
    sort = fields.Integer()
    active = fields.Boolean()


class CategoryCreateIn(Schema):
    code = fields.String(required=True, validate=CODE)
    name_zh = fields.String(required=True, validate=validate.Length(1, 64))
    name_en = fields.String(required=True, validate=validate.Length(1, 64))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True)
    sort = fields.Integer(validate=validate.Range(0, 10_000))


class CategoryUpdateIn(Schema):
    name_zh = fields.String(validate=validate.Length(1, 64))
    name_en = fields.String(validate=validate.Length(1, 64))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)))
    sort = fields.Integer(validate=validate.Range(0, 10_000))
    active = fields.Boolean()


class CategoryOrderIn(Schema):
    codes = fields.List(fields.String(validate=validate.Length(1, 32)), required=True,
                        validate=validate.Length(1, 500), metadata={"description": "codes in the picker's order"})


class SlaRuleOut(Schema):
    id = fields.Integer()
    stage = fields.String(metadata={"description": "accept | close"})
    risk_level = fields.String(metadata={"description": "red | yellow | blue"})
    category = fields.String(allow_none=True)
    level = fields.String(allow_none=True, metadata={"description": "handling level; null: every level"})
    limit_minutes = fields.Integer(metadata={"description": "minutes of the rule's clock"})
    clock = fields.String(metadata={"description": "natural (never stops) | working (office hours of working days)"})


class SlaRuleCreateIn(Schema):
    stage = fields.String(required=True, validate=validate.OneOf(STAGES))
    risk_level = fields.String(required=True, validate=validate.OneOf(RISKS))
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    level = fields.String(load_default=None, allow_none=True, validate=LEVEL)
    limit_minutes = fields.Integer(required=True, validate=validate.Range(1, 366 * 24 * 60))
    clock = fields.String(required=True, validate=validate.OneOf(CLOCKS))


class SlaRuleUpdateIn(Schema):
    limit_minutes = fields.Integer(validate=validate.Range(1, 366 * 24 * 60))
    clock = fields.String(validate=validate.OneOf(CLOCKS))


class DryRunQuery(Schema):
    dry_run = fields.Boolean(load_default=True, metadata={"description": "compute the result, write nothing"})


class CalendarImportIn(Schema):
    csv = fields.String(required=True, validate=validate.Length(1, 200_000),
                        metadata={"description": "lines date,holiday|workday[,name], as `flask calendar import`"})


class CoverageOut(Schema):
    ok = fields.Boolean()
    covered_until = fields.Date(allow_none=True)
    days_ahead = fields.Integer()
    missing_years = fields.List(fields.Integer())


class CalendarImportOut(Schema):
    dry_run = fields.Boolean()
    days = fields.Integer()
    added = fields.Integer()
    changed = fields.Integer()
    unchanged = fields.Integer()
    first = fields.Date()
    last = fields.Date()
    coverage = fields.Nested(CoverageOut)


class RegionsImportIn(Schema):
    geojson = fields.Dict(required=True, metadata={"description": "a FeatureCollection, as `flask regions import`"})


class RegionPlanItem(Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent = fields.String(allow_none=True)
    old_name = fields.String()
    old_parent = fields.String(allow_none=True)


class RegionsPlanOut(Schema):
    dry_run = fields.Boolean()
    created = fields.List(fields.Nested(RegionPlanItem))
    renamed = fields.List(fields.Nested(RegionPlanItem))
    moved = fields.List(fields.Nested(RegionPlanItem))
    reshaped = fields.List(fields.Nested(RegionPlanItem))
    unchanged = fields.Integer()
    features = fields.Dict(metadata={"description": "the file's regions as GeoJSON"})
    before = fields.Dict(metadata={"description": "the stored boundaries of the reshaped regions"})
