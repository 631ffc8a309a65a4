from marshmallow import Schema, fields, validate

from app.users.models import ROLES


class PersonOut(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    phone = fields.String(allow_none=True)
    role = fields.String(metadata={"example": "grid_worker"})
    role_label = fields.String(metadata={"example": "网格员"})
    region = fields.String(metadata={"example": "33038100100101"})
    region_name = fields.String(allow_none=True)
    region_path = fields.String(allow_none=True, metadata={"example": "安阳街道/万松社区/万松社区第1网格"})
    disabled = fields.Boolean()
    activated = fields.Boolean(metadata={"description": "false until the first login with the activation code"})
    last_seen = fields.DateTime(allow_none=True, metadata={"description": "last contact of any of their phones"})
    outbox_pending = fields.Integer(metadata={"description": "unsent items their phones reported"})


class PersonWithCodeOut(PersonOut):
    activation_code = fields.String(metadata={"description": "one-time; answered only here"})
    activation_expires_days = fields.Integer()


class PeopleQuery(Schema):
    q = fields.String(validate=validate.Length(max=64), metadata={"description": "username, name or phone"})
    role = fields.String(validate=validate.OneOf(ROLES))
    region = fields.String(validate=validate.Length(max=32), metadata={"description": "a subtree (code)"})
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


class PersonIn(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    display_name = fields.String(load_default="", validate=validate.Length(max=100))
    phone = fields.String(load_default="", validate=validate.Length(max=32))
    role = fields.String(required=True, validate=validate.Length(1, 16))
    region = fields.String(required=True, validate=validate.Length(1, 300),
                           metadata={"description": "code or name path 安阳街道/万松社区/万松社区第1网格"})


class MoveIn(Schema):
    region = fields.String(required=True, validate=validate.Length(1, 300))


class RosterQuery(Schema):
    dry_run = fields.Boolean(load_default=True, metadata={"description": "check only (the default)"})


class RosterFile(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"}, required=True)


class RowProblem(Schema):
    row = fields.Integer(metadata={"description": "as the spreadsheet numbers it (the header is 1)"})
    username = fields.String()
    field = fields.String()
    code = fields.String(metadata={"example": "unknown_region"})
    zh = fields.String()
    en = fields.String()


class CreatedAccount(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    region = fields.String()
    activation_code = fields.String()


class RosterOut(Schema):
    dry_run = fields.Boolean()
    rows = fields.Integer()
    bad_rows = fields.Integer()
    problems = fields.List(fields.Nested(RowProblem))
    created = fields.List(fields.Nested(CreatedAccount))
    codes_csv = fields.String(allow_none=True, metadata={"description": "printable sheet; only in this answer"})
    activation_expires_days = fields.Integer()
