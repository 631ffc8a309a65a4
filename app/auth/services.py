"""Logging in and out, refreshing, and revoking devices."""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import select, update

from app.auth import activation
from app.auth.models import AuthSession
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.scope import require_user_visible
from app.database import utcnow
from app.devices.models import Device
from app.errors import Forbidden, NotFound, Unauthorized
from app.extensions import db
from app.users.models import User

_AUTH_HEADER = {"WWW-Authenticate": 'Bearer realm="gridcase"'}


def _issue(session: AuthSession, user: User) -> dict:
    claims = {"sid": session.id, "dev": session.device_id}
    access = create_access_token(identity=str(user.id), additional_claims=claims)
    refresh = create_refresh_token(identity=str(user.id), additional_claims=claims)
    jti = decode_token(refresh)["jti"]
    session.refresh_jti = jti
    return {"access_token": access, "refresh_token": refresh,
            "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())}


def login(username: str, password: str, device_id: str, user_agent: str | None = None) -> tuple[dict, User]:
    """Check the password and open a session on ``device_id``.

    Raises Unauthorized (``invalid_credentials``, ``user_disabled``, ``device_revoked``).
    """
    user = db.session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password):
        raise Unauthorized("invalid_credentials")
    if not user.is_active:
        raise Unauthorized("user_disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return open_session(user, device_id, user_agent), user


def activate(username: str, code: str, password: str, device_id: str,
             user_agent: str | None = None) -> tuple[dict, User]:
    """First login of an imported or reset account: spend its activation code, set the password and open
    a session as ``login`` does. Raises Unauthorized (``activation_invalid``, ``activation_expired``,
    ``user_disabled``, ``device_revoked``), ValidationFailed (short password)."""
    user = db.session.scalar(select(User).where(User.username == username))
    activation.spend(user, code, password)
    return open_session(user, device_id, user_agent), user


def open_session(user: User, device_id: str, user_agent: str | None) -> dict:
    """A new session of ``user`` on ``device_id`` (committed); its tokens. Raises Unauthorized
    (``device_revoked``)."""
    now = utcnow()
    device = db.session.get(Device, device_id)
    if device is None:
        device = Device(id=device_id, user_id=user.id, first_seen=now, last_seen=now)
        db.session.add(device)
        db.session.flush()  # the session row below refers to it
    elif device.revoked_at is not None:
        raise Unauthorized("device_revoked")
    device.user_id = user.id
    device.last_seen = now
    if user_agent:
        device.user_agent = user_agent[:255]
    session = AuthSession(id=str(uuid.uuid4()), user_id=user.id, device_id=device_id, refresh_jti="",
                          created_at=now, expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])
    db.session.add(session)
    db.session.flush()
    tokens = _issue(session, user)
    db.session.commit()
    return tokens


def refresh(claims: dict, session: AuthSession) -> tuple[dict, User]:
    """Rotate the refresh token. An old token of the chain presented again means it was copied:
    every session of that device is revoked. Raises Unauthorized (``refresh_reused``)."""
    if claims["jti"] != session.refresh_jti:
        revoke_device_sessions(session.device_id, reason="refresh_reused")
        db.session.commit()
        raise Unauthorized("refresh_reused", headers=_AUTH_HEADER)
    device = db.session.get(Device, session.device_id)
    if device is not None and device.revoked_at is not None:
        raise Unauthorized("device_revoked", headers=_AUTH_HEADER)
    now = utcnow()
    session.refreshed_at = now
    session.refresh_count += 1
    session.expires_at = now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    if device is not None:
        device.last_seen = now
    tokens = _issue(session, session.user)
    db.session.commit()
    return tokens, session.user


def logout(session: AuthSession) -> None:
    """End this login for good (its access and refresh tokens stop working at once)."""
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        session.revoked_reason = "logout"
    db.session.commit()


def revoke_user_sessions(user_id: int, reason: str, at: datetime | None = None) -> int:
    """End every session of a user (they log in again on each phone; the phones keep their outbox)."""
    return db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at or utcnow(), revoked_reason=reason)
    ).rowcount


def revoke_device_sessions(device_id: str, reason: str, at: datetime | None = None) -> int:
    return db.session.execute(
        update(AuthSession)
        .where(AuthSession.device_id == device_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at or utcnow(), revoked_reason=reason)
    ).rowcount


def revoke_device(device_id: str, actor: User) -> Device:
    """Revoke a lost or stolen phone for good: its sessions end and it may not log in again.

    Admins may revoke any device; reviewers those of users in their region. Raises NotFound, Forbidden.
    """
    device = db.session.get(Device, device_id)
    if device is None:
        raise NotFound()
    require_user_visible(device.user, actor)
    if actor.role not in ("admin", "reviewer"):
        raise Forbidden()
    now = utcnow()
    if device.revoked_at is None:
        device.revoked_at = now
        device.revoked_by = actor.id
        device.revoked_reason = "revoked"
    revoke_device_sessions(device_id, reason="device_revoked", at=now)
    db.session.commit()
    return device
