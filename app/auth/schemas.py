from marshmallow import Schema, fields, validate

DEVICE_ID = validate.Regexp(r"^[A-Za-z0-9._:-]{8,64}$", error="8-64 letters, digits or . _ : -")


class LoginIn(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))
    device_id = fields.String(required=True, validate=DEVICE_ID)


class ActivateIn(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    code = fields.String(required=True, load_only=True, validate=validate.Length(1, 32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 256))
    device_id = fields.String(required=True, validate=DEVICE_ID)


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    role = fields.String()
    region = fields.String()
    region_name = fields.String(allow_none=True)
    region_level = fields.String(allow_none=True)


class TokensOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)
    server_time = fields.DateTime()


class MeOut(UserOut):
    device_id = fields.String(allow_none=True)
    server_time = fields.DateTime()
