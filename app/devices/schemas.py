from marshmallow import Schema, fields, validate


class DeviceOut(Schema):
    id = fields.String()
    username = fields.String(attribute="user.username")
    display_name = fields.String(attribute="user.display_name")
    role = fields.String(attribute="user.role")
    region = fields.String(attribute="user.region_code")
    first_seen = fields.DateTime()
    last_seen = fields.DateTime()
    last_sync_at = fields.DateTime(allow_none=True)
    outbox_pending = fields.Integer()
    outbox_oldest = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class DeviceQuery(Schema):
    unsent = fields.Boolean(load_default=False, metadata={"description": "only phones holding unsent work"})
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))
