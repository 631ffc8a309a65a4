"""What Open311 clients send: the query of ``GET requests.json`` and the body of ``POST requests.json``.

The spec's optional person fields (email, first_name, device_id, ...) are accepted and ignored: the bearer
token says who reports. Any other key is refused, as everywhere in Gridcase.
"""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from app.cases.models import RISK_LEVELS
from app.stats.schemas import Instant
from app.sync.schemas import MAX_DESCRIPTION, Text

MAX_IDS = 1000  # the spec's default page: at most 1000 requests per answer
STATUSES = ("open", "closed")


class CommaList(fields.Field):
    """``a,b,c`` → ["a", "b", "c"] (empty items dropped), each checked by ``item``."""

    def __init__(self, item=None, max_items: int = MAX_IDS, **kwargs):
        # for the spec: comma-separated items, each (as stripped) within the item's Length
        longest = (getattr(item, "max", None) or 1000) - 2
        one = rf"[^,\s]([^,]{{0,{longest}}}[^,\s])?"
        kwargs["metadata"] = {"type": "string", "pattern": rf"^{one}(,{one})*$", **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)
        self.item = item
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("a comma-separated list")
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise ValidationError("a comma-separated list")
        if len(items) > self.max_items:
            raise ValidationError(f"at most {self.max_items} items")
        if self.item is not None:
            for item in items:
                self.item(item)
        return items


class RequestsQuery(Schema):
    service_request_id = CommaList(validate.Length(1, 36), load_default=None,
                                   metadata={"description": "comma list; overrides every other filter"})
    service_code = CommaList(validate.Length(1, 32), load_default=None)
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)
    status = CommaList(validate.OneOf(STATUSES), load_default=None,
                       metadata={"pattern": r"^(open|closed)(,(open|closed))*$"})
    jurisdiction_id = fields.String(load_default=None, validate=validate.Length(1, 32),
                                    metadata={"description": "a region code in your scope"})


class ServicesQuery(Schema):
    jurisdiction_id = fields.String(load_default=None, validate=validate.Length(1, 32),
                                    metadata={"description": "a region code in your scope"})


class RequestIn(Schema):
    """``POST requests.json`` (form-encoded, as the spec has it, or JSON)."""

    class Meta:
        unknown = RAISE

    service_code = fields.String(required=True, validate=validate.Length(1, 32))
    lat = fields.Float(load_default=None, allow_none=True, allow_nan=False, validate=validate.Range(-90, 90))
    long = fields.Float(load_default=None, allow_none=True, allow_nan=False, validate=validate.Range(-180, 180))
    # Gridcase's address ids are micro-grid codes (GET /api/v1/regions/locate finds one).
    address_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    address_string = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    # As a phone's report: no control characters (PostgreSQL text cannot hold NUL), the same length limit.
    description = Text(load_default="", allow_none=True, validate=validate.Length(max=MAX_DESCRIPTION))
    media_url = fields.Url(load_default=None, allow_none=True, schemes={"http", "https"},
                           metadata={"format": "uri", "pattern": (  # what fields.Url takes, simplified
                               r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,6}"
                               r"(/[A-Za-z0-9._~/-]*)?$")},
                           validate=validate.Length(max=1000))
    # A Gridcase extension; a reviewer sets the real colour when reviewing.
    risk_level = fields.String(load_default="blue", validate=validate.OneOf(RISK_LEVELS))
    # The spec's optional fields: the token already says who reports and from which device.
    jurisdiction_id = fields.String(load_default=None, allow_none=True)
    api_key = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)
    device_id = fields.String(load_default=None, allow_none=True)
    account_id = fields.String(load_default=None, allow_none=True)
    first_name = fields.String(load_default=None, allow_none=True)
    last_name = fields.String(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _where(self, data, **kwargs):
        if (data.get("lat") is None) != (data.get("long") is None):
            raise ValidationError("lat and long come together", "lat" if data.get("lat") is None else "long")
        if data.get("lat") is None and not data.get("address_id"):
            raise ValidationError("a location (lat and long) or an address_id is needed", "lat")
