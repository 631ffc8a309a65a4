"""What phones send: the sync envelope and the four op types. Unknown keys are refused everywhere."""

from __future__ import annotations

import re
from datetime import timedelta, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.cases.models import EDITABLE_FIELDS, PHOTO_ROLES, RISK_LEVELS
from app.cases.workflow import ACTIONS

SHA256 = re.compile(r"^[0-9a-f]{64}$")
UUID = validate.Regexp(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                       error="must be a UUID")
# Control characters (NUL above all: PostgreSQL text cannot hold it) have no place in a report.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CHINA_TZ = timezone(timedelta(hours=8))

MAX_DESCRIPTION = 2000  # characters; a field report is a few sentences (voice input included)
MAX_NOTE = 2000
MAX_PHOTOS = 20


class Text(fields.String):
    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$",
                              **(kwargs.get("metadata") or {})}  # _CONTROL, for the spec
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ValidationError("contains control characters")
        return text


class DeviceTime(fields.AwareDateTime):
    """A device timestamp; one without an offset is read as China Standard Time (UTC+8)."""

    def __init__(self, **kwargs):
        from app.stats.schemas import INSTANT_DOC

        kwargs["metadata"] = {"pattern": INSTANT_DOC["anyOf"][1]["pattern"], **(kwargs.get("metadata") or {})}
        super().__init__(default_timezone=CHINA_TZ, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        from app.stats.schemas import check_instant_range

        # 0001-01-01T00:00+14:00 is a valid date-time whose UTC is not a datetime: a 500 when stored
        return check_instant_range(super()._deserialize(value, attr, data, **kwargs))


class PhotoRef(fields.Field):
    """A photo named by its sha256, either as the bare hash or as ``{"sha256": …, "role": …}``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"anyOf": [
            {"type": "string", "pattern": SHA256.pattern},
            {"type": "object", "required": ["sha256"], "additionalProperties": False, "properties": {
                "sha256": {"type": "string", "pattern": SHA256.pattern},
                "role": {"type": "string", "enum": list(PHOTO_ROLES), "nullable": True}}}]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        role = None
        if isinstance(value, dict):
            if set(value) - {"sha256", "role"}:
                raise ValidationError("only sha256 and role")
            role = value.get("role")
            if role is not None and role not in PHOTO_ROLES:
                raise ValidationError(f"role must be one of {', '.join(PHOTO_ROLES)}")
            value = value.get("sha256")
        if not isinstance(value, str) or not SHA256.match(value):
            raise ValidationError("must be the lowercase hex sha256 of the photo file")
        return {"sha256": value, "role": role}


class LocationIn(Schema):
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    accuracy_m = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                              validate=validate.Range(0, 100_000))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02", "bd09"]))


class ReportIn(Schema):
    id = fields.String(required=True, validate=UUID)
    category = fields.String(required=True, validate=validate.Length(1, 32))
    risk_level = fields.String(required=True, validate=validate.OneOf(RISK_LEVELS))
    description = Text(load_default="", validate=validate.Length(max=MAX_DESCRIPTION))
    micro_grid_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    location = fields.Nested(LocationIn, load_default=None, allow_none=True)
    captured_at = DeviceTime(load_default=None, allow_none=True)
    photos = fields.List(PhotoRef(), load_default=list, validate=validate.Length(max=MAX_PHOTOS))
    handled_on_spot = fields.Boolean(load_default=False)

    @validates_schema
    def _where(self, data, **kwargs):
        if not data.get("micro_grid_id") and not data.get("location"):
            raise ValidationError("a micro_grid_id or a location is needed", "location")


class NoteIn(Schema):
    id = fields.String(required=True, validate=UUID)
    text = Text(load_default="", validate=validate.Length(max=MAX_NOTE))
    photos = fields.List(PhotoRef(), load_default=list, validate=validate.Length(max=MAX_PHOTOS))
    captured_at = DeviceTime(load_default=None, allow_none=True)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data.get("text", "").strip() and not data.get("photos"):
            raise ValidationError("a note needs text or photos", "text")


class ChangesIn(Schema):
    category = fields.String(validate=validate.Length(1, 32))
    risk_level = fields.String(validate=validate.OneOf(RISK_LEVELS))
    description = Text(validate=validate.Length(max=MAX_DESCRIPTION))
    location = fields.Nested(LocationIn)
    micro_grid_id = fields.String(validate=validate.Length(1, 32))


class _OpBase(Schema):
    op_id = fields.String(required=True, validate=UUID)
    # stored in an INTEGER column: beyond it PostgreSQL fails the whole batch (a retry that never succeeds)
    seq = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(-2**31, 2**31 - 1))
    type = fields.String(required=True)


class ReportCreateOp(_OpBase):
    report = fields.Nested(ReportIn, required=True)


class CaseUpdateOp(_OpBase):
    case_id = fields.String(required=True, validate=UUID)
    base_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    changes = fields.Dict(required=True)

    @validates_schema
    def _changes(self, data, **kwargs):
        changes = data.get("changes") or {}
        if not changes:
            raise ValidationError("no changes", "changes")
        unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
        if unknown:
            raise ValidationError({key: ["unknown_field: may not be changed by case.update"]
                                   for key in unknown}, "changes")
        data["changes"] = ChangesIn().load(changes)


class CaseNoteOp(_OpBase):
    case_id = fields.String(required=True, validate=UUID)
    note = fields.Nested(NoteIn, required=True)


class CaseTransitionOp(_OpBase):
    case_id = fields.String(required=True, validate=UUID)
    base_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    note = fields.Nested(NoteIn, load_default=None, allow_none=True)
    reason = Text(load_default=None, allow_none=True, validate=validate.Length(1, 500))
    assignee = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    unit = Text(load_default=None, allow_none=True, validate=validate.Length(1, 100))
    target = fields.String(load_default=None, allow_none=True, validate=UUID)


OP_SCHEMAS = {
    "report.create": ReportCreateOp(),
    "case.update": CaseUpdateOp(),
    "case.note": CaseNoteOp(),
    "case.transition": CaseTransitionOp(),
}


class OutboxIn(Schema):
    pending = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 10_000_000))
    oldest = DeviceTime(load_default=None, allow_none=True)


class EnvelopeIn(Schema):
    device_id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{8,64}$"))
    client_time = DeviceTime(load_default=None, allow_none=True)
    outbox = fields.Nested(OutboxIn, load_default=None, allow_none=True)
    # Raw(allow_none): a null op is one bad op, rejected alone in its result, not a bad envelope
    ops = fields.List(fields.Raw(allow_none=True), required=True)


# ---------------------------------------------------------------------------------------------- fast path
#
# Marshmallow costs ~0.15 ms per report, a tenth of what a report costs in all. The common, well-formed op
# is checked here by hand instead and gives exactly what the schema's ``load`` would; anything this code is
# not sure of (a missing key, a wrong type, a value out of range, the rarer forms) gets ``None`` and goes
# through the schema, so every error message and code stays the schema's own.

_UUID_MATCH = UUID.regex.match
_OP_KEYS = {"report.create": frozenset({"op_id", "seq", "type", "report"}),
            "case.update": frozenset({"op_id", "seq", "type", "case_id", "base_version", "changes"})}
_REPORT_KEYS = frozenset(ReportIn._declared_fields)
_LOCATION_KEYS = frozenset(LocationIn._declared_fields)
_CRS = frozenset(["wgs84", "gcj02", "bd09"])
_CAPTURED_AT = ReportIn._declared_fields["captured_at"]
_SEQ_MIN, _SEQ_MAX = -2**31, 2**31 - 1


class _Unsure(Exception):
    pass


def _number(value, low: float, high: float) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Unsure
    value = float(value)  # an int too large for a float raises OverflowError: left to the schema
    if not (low <= value <= high):  # NaN fails this too
        raise _Unsure
    return value


def _short(value, longest: int) -> str:
    if type(value) is not str or not (1 <= len(value) <= longest):
        raise _Unsure
    return value


def _text(value, longest: int) -> str:
    if type(value) is not str or len(value) > longest or _CONTROL.search(value):
        raise _Unsure
    return value


def _location(loc) -> dict:
    if type(loc) is not dict or not loc.keys() <= _LOCATION_KEYS:
        raise _Unsure
    accuracy = loc.get("accuracy_m")
    crs = loc.get("crs", "wgs84")
    if type(crs) is not str or crs not in _CRS:
        raise _Unsure
    return {"lat": _number(loc["lat"], -90, 90), "lon": _number(loc["lon"], -180, 180),
            "accuracy_m": None if accuracy is None else _number(accuracy, 0, 100_000), "crs": crs}


def _photos(photos) -> list:
    if type(photos) is not list or len(photos) > MAX_PHOTOS:
        raise _Unsure
    out = []
    for ref in photos:
        if type(ref) is not str or not SHA256.match(ref):
            raise _Unsure
        out.append({"sha256": ref, "role": None})
    return out


def _report(report) -> dict:
    if type(report) is not dict or not report.keys() <= _REPORT_KEYS:
        raise _Unsure
    report_id = report["id"]
    if type(report_id) is not str or not _UUID_MATCH(report_id):
        raise _Unsure
    risk = report["risk_level"]
    if type(risk) is not str or risk not in RISK_LEVELS:
        raise _Unsure
    micro_grid = report.get("micro_grid_id")
    location = report.get("location")
    captured = report.get("captured_at")
    on_spot = report.get("handled_on_spot", False)
    if type(on_spot) is not bool:
        raise _Unsure
    out = {"id": report_id, "category": _short(report["category"], 32), "risk_level": risk,
           "description": _text(report.get("description", ""), MAX_DESCRIPTION),
           "micro_grid_id": None if micro_grid is None else _short(micro_grid, 32),
           "location": None if location is None else _location(location),
           "captured_at": None if captured is None else _CAPTURED_AT.deserialize(captured, "captured_at", report),
           "photos": _photos(report.get("photos", [])), "handled_on_spot": on_spot}
    if not out["micro_grid_id"] and not out["location"]:
        raise _Unsure
    return out


def _changes(changes) -> dict:
    if type(changes) is not dict or not changes or not changes.keys() <= set(EDITABLE_FIELDS):
        raise _Unsure
    out = {}
    for key, value in changes.items():
        if key == "risk_level":
            if type(value) is not str or value not in RISK_LEVELS:
                raise _Unsure
            out[key] = value
        elif key == "description":
            out[key] = _text(value, MAX_DESCRIPTION)
        elif key in ("category", "micro_grid_id"):
            out[key] = _short(value, 32)
        else:
            out[key] = _location(value)
    return out


def fast_load(kind: str, raw_op: dict) -> dict | None:
    """The op as ``OP_SCHEMAS[kind].load`` gives it, or None: then the schema must judge it."""
    keys = _OP_KEYS.get(kind)
    if keys is None or not raw_op.keys() <= keys:
        return None
    try:
        op_id = raw_op["op_id"]
        seq = raw_op.get("seq")
        if type(op_id) is not str or not _UUID_MATCH(op_id) or not (
                seq is None or (type(seq) is int and _SEQ_MIN <= seq <= _SEQ_MAX)):
            return None
        if kind == "report.create":
            return {"op_id": op_id, "seq": seq, "type": kind, "report": _report(raw_op["report"])}
        case_id, base = raw_op["case_id"], raw_op["base_version"]
        if type(case_id) is not str or not _UUID_MATCH(case_id) or type(base) is not int or base < 1:
            return None
        return {"op_id": op_id, "seq": seq, "type": kind, "case_id": case_id, "base_version": base,
                "changes": _changes(raw_op["changes"])}
    except (_Unsure, KeyError, ValidationError, OverflowError):
        return None
