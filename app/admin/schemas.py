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
