import uuid
from datetime import date, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.cases.models import HANDLING_LEVELS, RISK_LEVELS, STATES
from app.cases.workflow import ACTIONS
from app.stats.schemas import INSTANT_DOC, check_instant_range
from app.sync.schemas import CHINA_TZ, UUID, NoteIn, Text


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


# ---------------------------------------------------------------------------------------------- review
# The review routes: online transitions (one case, or many), the queue and its exports.

BULK_ACTIONS = ("accept", "return", "reject")
MAX_BULK_CASES = 200  # one screen of the queue; each case is a locked row and an event in one transaction
QUEUE_SORTS = ("reported_at", "-reported_at", "due_at", "-updated_at", "number")
MAX_PAGE = 200


def _new_uuid() -> str:
    return str(uuid.uuid4())


class TransitionNoteIn(NoteIn):
    """A note sent online with a transition; the server names it when the client did not."""

    id = fields.String(load_default=_new_uuid, validate=UUID)


class TransitionIn(Schema):
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    base_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    reason = Text(load_default=None, allow_none=True, validate=validate.Length(1, 500))
    note = fields.Nested(TransitionNoteIn, load_default=None, allow_none=True)
    assignee = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    unit = Text(load_default=None, allow_none=True, validate=validate.Length(1, 100))
    target = fields.String(load_default=None, allow_none=True, validate=UUID)


class BulkCaseIn(Schema):
    id = fields.String(required=True, validate=UUID)
    base_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class BulkTransitionIn(Schema):
    action = fields.String(required=True, validate=validate.OneOf(BULK_ACTIONS))
    cases = fields.List(fields.Nested(BulkCaseIn), required=True, validate=validate.Length(1, MAX_BULK_CASES))
    reason = Text(load_default=None, allow_none=True, validate=validate.Length(1, 500))

    @validates_schema
    def _unique(self, data, **kwargs):
        ids = [c["id"].lower() for c in data.get("cases") or []]
        if len(ids) != len(set(ids)):
            raise ValidationError("each case may appear once", "cases")


class ListArg(fields.List):
    """A repeatable query argument that also takes comma-separated values (``?state=a&state=b,c``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = [value]
        parts = [part.strip() for item in value if isinstance(item, str) for part in item.split(",")]
        return super()._deserialize([p for p in parts if p], attr, data, **kwargs)


class Instant(fields.Field):
    """A date (a whole day in China Standard Time: ``to`` then means the end of that day) or a date-time
    (one without an offset is read as CST)."""

    def __init__(self, *, end: bool = False, **kwargs):

        kwargs["metadata"] = {**INSTANT_DOC, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)
        self.end = end

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a date or a date-time")
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                start = check_instant_range(datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ))
                return start + timedelta(days=1) if self.end else start
            moment = check_instant_range(datetime.fromisoformat(value))
        except ValueError as exc:
            raise ValidationError("must be an ISO 8601 date or date-time") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


class QueueFilterQuery(Schema):
    """The queue's filters; the exports take the same ones."""

    state = ListArg(fields.String(validate=validate.OneOf(STATES)), load_default=list)
    risk_level = ListArg(fields.String(validate=validate.OneOf(RISK_LEVELS)), load_default=list)
    category = ListArg(fields.String(validate=validate.Length(1, 32)), load_default=list)
    region = fields.String(load_default=None, validate=validate.Length(1, 32))
    level = fields.String(load_default=None, validate=validate.OneOf(HANDLING_LEVELS))
    overdue = fields.Boolean(load_default=None)
    flag = fields.String(load_default=None, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$",
                                                                     error="a flag name, or any"))
    has_conflicts = fields.Boolean(load_default=None)
    reporter = fields.String(load_default=None, validate=validate.Length(1, 64))
    from_ = Instant(data_key="from", load_default=None)
    to = Instant(end=True, load_default=None)
    q = fields.String(load_default=None, validate=validate.Length(1, 100))
    sort = fields.String(load_default="-reported_at", validate=validate.OneOf(QUEUE_SORTS))


class QueueQuery(QueueFilterQuery):
    cursor = fields.String(load_default=None, validate=validate.Length(1, 1000))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PAGE))


class ExportQuery(QueueFilterQuery):
    format = fields.String(load_default="xlsx", validate=validate.OneOf(("csv", "xlsx", "geojson")))


# ---------------------------------------------------------------------------------------------- calendar

YEAR_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-"  # the years 1900-2999, as the figures' instants
MAX_CALENDAR_DAYS = 3 * 366  # three years at a glance; more is an export, not a page
CALENDAR_DEFAULT_DAYS = 90  # from today: what the deadlines of the coming weeks depend on


class CalendarQuery(Schema):
    start = fields.Date(data_key="from", load_default=None, metadata={
        "description": "first day, inclusive (default: today in China Standard Time)", "pattern": YEAR_PATTERN})
    end = fields.Date(data_key="to", load_default=None, metadata={
        "description": f"last day, inclusive (default: {CALENDAR_DEFAULT_DAYS} days after `from`)",
        "pattern": YEAR_PATTERN})

    @validates_schema
    def _range(self, data, **kwargs):
        for key, name in (("start", "from"), ("end", "to")):
            if data.get(key) is not None and not 1900 <= data[key].year <= 2999:
                raise ValidationError("must lie between the years 1900 and 2999", name)
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            if end < start:
                raise ValidationError("must not be before `from`", "to")
            if (end - start).days >= MAX_CALENDAR_DAYS:
                raise ValidationError(f"the period may span at most {MAX_CALENDAR_DAYS} days", "to")


class CalendarDayOut(Schema):
    date = fields.Date()
    kind = fields.String(metadata={"description": "`holiday` (a day off, 放假) or `workday` (a make-up workday, 调休上班)"})
    workday = fields.Boolean()
    name = fields.String(metadata={"description": "国庆节, 春节调休上班, …"})
    weekday = fields.Integer(metadata={"description": "ISO weekday, 1 = Monday … 7 = Sunday"})


class OfficeSeasonOut(Schema):
    from_ = fields.String(attribute="from", data_key="from", metadata={"description": "MM-DD, every year"})
    to = fields.String(metadata={"description": "MM-DD, inclusive"})
    periods = fields.List(fields.String())


class OfficeHoursOut(Schema):
    timezone = fields.String()
    default = fields.List(fields.String(), metadata={"description": "HH:MM-HH:MM"})
    seasons = fields.List(fields.Nested(OfficeSeasonOut))


class CalendarOut(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    days = fields.List(fields.Nested(CalendarDayOut))
    covered = fields.Boolean(metadata={"description": "the calendar holds the State Council's arrangement for "
                                                      "every year of the period"})
    missing_years = fields.List(fields.Integer())
    office_hours = fields.Nested(OfficeHoursOut, metadata={"description": "what working time counts"})
