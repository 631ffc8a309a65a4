"""Scope: the one place that decides what a user may see.

A user may read and act only on what lies inside their region's subtree: a reviewer of township T sees T's
cases, a grid worker their grid's, a volunteer only what they reported; an admin sees everything. Every
list goes through a ``scoped_*`` function and every lookup through a ``require_*`` function. What is out of
scope is answered exactly as what does not exist (404), so ids of other townships leak nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Select, false, or_, true

from app.errors import NotFound

if TYPE_CHECKING:
    from app.regions.models import Region
    from app.users.models import User


def in_subtree(region: Region, root: Region) -> bool:
    """True when ``region`` is ``root`` or lies below it."""
    return getattr(region, f"{root.level}_code") == root.code


def subtree_criterion(model, root: Region):
    """SQL criterion: rows of ``model`` (which carries the per-level code columns) inside ``root``."""
    return getattr(model, f"{root.level}_code") == root.code


def region_criterion(model, user: User):
    """Rows of a region-coded ``model`` the user may see (admins: all)."""
    if user.role == "admin":
        return true()
    if user.region is None:
        return false()
    return subtree_criterion(model, user.region)


def scoped_regions(stmt: Select, user: User) -> Select:
    from app.regions.models import Region

    return stmt.where(region_criterion(Region, user))


def region_visible(region: Region | None, user: User) -> bool:
    if region is None:
        return False
    return user.role == "admin" or in_subtree(region, user.region)


def require_region_visible(region: Region | None, user: User) -> Region:
    """The region, if the user may see it. Raises NotFound otherwise."""
    if not region_visible(region, user):
        raise NotFound()
    return region


def user_visible(target: User | None, actor: User) -> bool:
    """Whether ``actor`` may see (and, for reviewers, manage) ``target``: themselves, or someone in their
    region's subtree for reviewers and admins."""
    if target is None:
        return False
    if target.id == actor.id or actor.role == "admin":
        return True
    return actor.role == "reviewer" and in_subtree(target.region, actor.region)


def require_user_visible(target: User | None, actor: User) -> User:
    if not user_visible(target, actor):
        raise NotFound()
    return target


def case_criterion(model, user: User):
    """Cases the user may see: volunteers their own reports, others their region's subtree, what was
    assigned to them and what they reported."""
    if user.role == "admin":
        return true()
    if user.role == "volunteer":
        return model.reporter_id == user.id
    return or_(subtree_criterion(model, user.region), model.assignee_id == user.id, model.reporter_id == user.id)


def scoped_cases(stmt: Select, user: User, model=None) -> Select:
    if model is None:
        from app.cases.models import Case as model  # noqa: N813
    return stmt.where(case_criterion(model, user))


def case_visible(case, user: User) -> bool:
    if case is None:
        return False
    if user.role == "admin":
        return True
    if user.role == "volunteer":
        return case.reporter_id == user.id
    return (getattr(case, f"{user.region.level}_code") == user.region_code or case.assignee_id == user.id
            or case.reporter_id == user.id)


def require_case_visible(case, user: User):
    """The case, if the user may see it. Raises NotFound otherwise (never Forbidden: no id leaks)."""
    if not case_visible(case, user):
        raise NotFound()
    return case
