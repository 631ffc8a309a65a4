"""Every table, imported in one place so Alembic and ``db.create_all`` see them all."""

from app.admin.models import AdminEvent  # noqa: F401
from app.auth.models import ActivationCode, AuthSession  # noqa: F401
from app.cases.models import (  # noqa: F401
    CalendarDay,
    Case,
    CaseEvent,
    CaseNote,
    CasePhoto,
    CaseScopeExit,
    CaseStage,
    Category,
    Conflict,
    Counter,
    PointsEntry,
    SlaRule,
)
from app.devices.models import Device  # noqa: F401
from app.media.models import Photo, PhotoHolder, Upload  # noqa: F401
from app.ops.ratelimit_store import counters  # noqa: F401 (rate-limit counters every worker shares)
from app.regions.models import Region  # noqa: F401
from app.stats.models import stats_finished, stats_reported  # noqa: F401
from app.sync.models import HeldOp, OpLog  # noqa: F401
from app.users.models import User  # noqa: F401
