"""Who may take a case (交办): the grid workers of the case's grid first, then those of its township, each
with their open workload, so a reviewer picks a person instead of typing a login. Only people the reviewer
may see (their region's subtree) are offered: the same people the assign transition accepts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from app.auth.scope import subtree_criterion, user_visible
from app.cases import deadlines
from app.cases.models import OPEN_STATES, Case
from app.extensions import db
from app.regions.models import Region
from app.users.models import User

ASSIGNABLE_ROLES = ("grid_worker",)
MAX_PEOPLE = 200  # a township's grid workers on one screen


def candidates(case: Case, reviewer: User, now: datetime) -> dict:
    """The people who may take ``case``, its grid's first, then by open workload and name; and the deadline
    the assignee will work to (the running stage: assigning does not restart its clock)."""
    open_cases = (select(Case.assignee_id, func.count().label("n")).where(Case.state.in_(OPEN_STATES),
                                                                           Case.assignee_id.is_not(None))
                  .group_by(Case.assignee_id).subquery())
    township = db.session.get(Region, case.township_code) if case.township_code else None
    if township is None:
        return {"deadline": deadlines.stage_view(case, now), "people": []}
    rows = db.session.execute(
        select(User, Region.name, func.coalesce(open_cases.c.n, 0))
        .join(Region, Region.code == User.region_code)
        .outerjoin(open_cases, open_cases.c.assignee_id == User.id)
        .where(User.role.in_(ASSIGNABLE_ROLES), User.disabled_at.is_(None), subtree_criterion(Region, township))
        .order_by(User.username).limit(MAX_PEOPLE)).all()
    people = [{"username": user.username, "display_name": user.display_name or user.username,
               "role": user.role, "region": user.region_code, "region_name": region_name,
               "same_grid": user.region.grid_code == case.grid_code,
               "open_cases": int(n), "current": user.id == case.assignee_id}
              for user, region_name, n in rows if user_visible(user, reviewer)]
    people.sort(key=lambda p: (not p["same_grid"], p["open_cases"], p["display_name"]))
    return {"deadline": deadlines.stage_view(case, now), "people": people}
