"""Query parameters of the figures and the points: a region of the caller's scope and a period."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

CHINA_TZ = timezone(timedelta(hours=8))
MAX_PERIOD = timedelta(days=3 * 366)  # a figure over more than three years is a report, not a dashboard


# Instants a query may name: beyond these, converting to UTC or adding a day overflows datetime (a 500).
MIN_YEAR, MAX_YEAR = 1900, 2999  # wide: a phone with a reset clock is flagged (clock_skew), not refused
_YEAR_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-"
# How the spec shows an Instant: a custom Field is otherwise documented as "anything".
INSTANT_DOC = {"anyOf": [{"type": "string", "format": "date", "pattern": _YEAR_PATTERN},
                         {"type": "string", "format": "date-time", "pattern": _YEAR_PATTERN}]}


def check_instant_range(moment: datetime) -> datetime:
    """``moment`` if its year is MIN_YEAR..MAX_YEAR (in its own offset), else ValidationError."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValidationError(f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return moment


class Instant(fields.Field):
    """A date (``2026-11-01``: its midnight in China Standard Time) or an ISO 8601 instant; one without an
    offset is read as China Standard Time, as the phones' are."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {**INSTANT_DOC, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("an ISO 8601 date or date-time")
        text = value.strip().replace("Z", "+00:00")
        if "T" in text and " " in text:
            text = text.replace(" ", "+")  # an unencoded "+08:00" arrives as " 08:00"
        try:
            if len(text) == 10:
                day = check_instant_range(datetime.combine(date.fromisoformat(text), time(0), CHINA_TZ))
                return day.astimezone(UTC)
            moment = check_instant_range(datetime.fromisoformat(text))
        except ValueError as exc:
            raise ValidationError("an ISO 8601 date or date-time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=CHINA_TZ)
        return moment.astimezone(UTC)


class PeriodQuery(Schema):
    region = fields.String(load_default=None, validate=validate.Length(1, 32),
                           metadata={"description": "a region code in your scope (default: your own region)"})
    start = Instant(data_key="from", load_default=None,
                    metadata={"description": "period start, inclusive (default: 30 days before `to`)"})
    end = Instant(data_key="to", load_default=None, metadata={"description": "period end, exclusive (default: now)"})

    @validates_schema
    def _order(self, data, **kwargs):
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            if end <= start:
                raise ValidationError("must be after `from`", "to")
            if end - start > MAX_PERIOD:
                raise ValidationError("the period may span at most three years", "to")


class PointsQuery(PeriodQuery):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000),
                           metadata={"description": "leaderboard rows / ledger entries"})


class LedgerQuery(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    before = fields.Integer(load_default=None, validate=validate.Range(min=1),
                            metadata={"description": "the `next` of the previous page"})
