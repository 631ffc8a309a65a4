"""Creating, disabling and moving users."""

from __future__ import annotations

from sqlalchemy import select, update

from app.auth.models import AuthSession
from app.auth.passwords import hash_password
from app.database import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.regions.models import Region
from app.users.models import ROLES, User

# The region level each role usually sits at; other levels are allowed (a reviewer of a village).
MIN_PASSWORD = 8


def create_user(username: str, role: str, region_code: str, password: str, display_name: str = "") -> User:
    """Create a user. Raises ValidationFailed (bad role, unknown region, short password), Conflict (taken)."""
    errors = {}
    if role not in ROLES:
        errors["role"] = [f"one of {', '.join(ROLES)}"]
    region = db.session.get(Region, region_code)
    if region is None:
        errors["region"] = [f"unknown region {region_code!r}"]
    if len(password) < MIN_PASSWORD:
        errors["password"] = [f"at least {MIN_PASSWORD} characters"]
    if not username or len(username) > 64:
        errors["username"] = ["1-64 characters"]
    if errors:
        raise ValidationFailed(errors=errors)
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("username_taken")
    user = User(username=username, role=role, region_code=region_code, display_name=display_name or username,
                password_hash=hash_password(password))
    db.session.add(user)
    db.session.commit()
    return user


def get_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound()
    return user


def disable_user(username: str) -> User:
    """Disable a user: every session ends at once and login is refused. Raises NotFound."""
    user = get_user(username)
    now = utcnow()
    if user.disabled_at is None:
        user.disabled_at = now
    db.session.execute(update(AuthSession).where(AuthSession.user_id == user.id,
                                                 AuthSession.revoked_at.is_(None))
                       .values(revoked_at=now, revoked_reason="user_disabled"))
    db.session.commit()
    return user


def enable_user(username: str) -> User:
    user = get_user(username)
    user.disabled_at = None
    db.session.commit()
    return user


def move_user(username: str, region_code: str) -> User:
    """Move a user to another region; their scope changes on their next request. Raises NotFound,
    ValidationFailed."""
    user = get_user(username)
    if db.session.get(Region, region_code) is None:
        raise ValidationFailed(errors={"region": [f"unknown region {region_code!r}"]})
    user.region_code = region_code
    db.session.commit()
    return user
