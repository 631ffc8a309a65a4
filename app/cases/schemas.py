from marshmallow import Schema, fields, validate


class CategoryOut(Schema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()
    roles = fields.List(fields.String())


class ConflictOut(Schema):
    id = fields.String()
    case_id = fields.String()
    case_number = fields.String(allow_none=True)
    field = fields.String()
    base = fields.Raw(allow_none=True)
    server = fields.Raw(allow_none=True)
    client = fields.Raw(allow_none=True)
    op_id = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    username = fields.String(allow_none=True)
    base_version = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    status = fields.String()
    resolution = fields.String(allow_none=True)
    resolved_value = fields.Raw(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)


class ConflictQuery(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "resolved", "all"]))
    case_id = fields.String(load_default=None, validate=validate.Length(max=36))
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


class ResolveIn(Schema):
    choose = fields.String(required=True, validate=validate.OneOf(["server", "client", "value"]))
    value = fields.Raw(load_default=None, allow_none=True)


class WorkflowRowOut(Schema):
    state = fields.String()
    action = fields.String()
    next = fields.String()
    roles = fields.List(fields.String())
    needs = fields.List(fields.String())
