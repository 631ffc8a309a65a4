"""Is there anything new for me? The open app asks every half minute (and when it comes back to the screen
or online); the answer is an ETag, and a ``304`` while nothing in the caller's scope changed.

Web Push cannot carry this: it needs the browser vendor's push service (Google's FCM for Chrome), which
phones in mainland China do not reach. A poll over the app's own connection reaches every phone that has
a network, and it costs the server a few index look-ups: the ETag is the highest ``change_seq`` (the global
change order every change to a case is stamped with, app/cases/unit_of_work.py) among the cases the caller may
see, and among the cases that left their region (tombstones). Each part is one walk down an index on
``(scope column, change_seq)``. It is computed from the database, so every gunicorn worker and every node
gives the same ETag for the same state; a change outside the caller's scope never alters it.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from app.cases.models import OPEN_STATES, Case, CaseScopeExit
from app.extensions import db
from app.users.models import User

# How often the PWA asks (it may be told another interval, see ``summary``): new work shows within a minute.
POLL_SECONDS = 30


def _max_seq(model, *criteria):
    return (select(model.change_seq).where(*criteria).order_by(model.change_seq.desc()).limit(1)
            .scalar_subquery())


def _parts(user: User) -> list:
    """The scalar subqueries whose values make the ETag: the newest change in each part of my scope."""
    if user.role == "admin":
        return [_max_seq(Case), _max_seq(CaseScopeExit)]
    mine = [_max_seq(Case, Case.reporter_id == user.id)]
    if user.role == "volunteer":
        return mine
    level = user.region.level
    return mine + [_max_seq(Case, Case.assignee_id == user.id),
                   _max_seq(Case, getattr(Case, f"{level}_code") == user.region_code),
                   _max_seq(CaseScopeExit, getattr(CaseScopeExit, f"{level}_code") == user.region_code)]


def etag(user: User) -> str:
    """The caller's ETag: changes whenever a case they may see changes (or leaves their region), and with
    who they are (role, region). One SELECT of a few index look-ups."""
    values = db.session.execute(select(*_parts(user))).one()
    seqs = "-".join(str(v or 0) for v in values)
    who = hashlib.sha256(f"{user.id}:{user.role}:{user.region_code}".encode()).hexdigest()[:10]
    return f'W/"{who}.{seqs}"'


def summary(user: User) -> dict:
    """What the app shows in its notice when the ETag changed: my open tasks, my returned reports, and for
    reviewers the reports waiting for review in my scope."""
    from app.auth.scope import case_criterion

    def count(*criteria) -> int:
        return db.session.scalar(select(func.count()).select_from(Case).where(*criteria)) or 0

    out = {"poll_s": POLL_SECONDS,
           "assigned_open": count(Case.assignee_id == user.id, Case.state.in_(OPEN_STATES)),
           "returned_mine": count(Case.reporter_id == user.id, Case.state == "returned")}
    if user.role in ("reviewer", "admin"):
        out["awaiting_review"] = count(case_criterion(Case, user), Case.state == "reported")
    return out
