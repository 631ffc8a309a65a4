"""One-time activation codes: issued when an account is created or reset, spent on the first login, which
sets the password. A code is answered once (to the admin who issued it) and stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete

from app.auth.models import ActivationCode
from app.auth.passwords import hash_password
from app.database import utcnow
from app.errors import Unauthorized, ValidationFailed
from app.extensions import db
from app.users.models import User

# No 0/O, 1/I/L: a code is read off paper and typed on a phone.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
# What an account waiting for activation has instead of a password hash: never matches any password.
NO_PASSWORD = "!activation-pending"
MIN_PASSWORD = 8


def _digest(user_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{user_id}:{code.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def issue(users: list[User]) -> dict[int, str]:
    """A fresh code for each (flushed) user, replacing any earlier one; ``{user_id: code}``. The caller
    commits."""
    ids = [user.id for user in users]
    for start in range(0, len(ids), 500):
        db.session.execute(delete(ActivationCode).where(ActivationCode.user_id.in_(ids[start:start + 500])))
    now = utcnow()
    expires = now + timedelta(days=current_app.config["ACTIVATION_CODE_DAYS"])
    codes = {user.id: new_code() for user in users}
    db.session.add_all([ActivationCode(user_id=uid, code_hash=_digest(uid, code), created_at=now, expires_at=expires)
                        for uid, code in codes.items()])
    return codes


def spend(user: User | None, code: str, password: str) -> User:
    """Check the code and set the password; the code is gone afterwards. Raises Unauthorized
    (``activation_invalid``, ``activation_expired``, ``user_disabled``), ValidationFailed (short password)."""
    record = db.session.get(ActivationCode, user.id) if user is not None else None
    if record is None or not hmac.compare_digest(record.code_hash, _digest(user.id, code)):
        raise Unauthorized("activation_invalid")
    if record.expires_at <= utcnow():
        raise Unauthorized("activation_expired")
    if not user.is_active:
        raise Unauthorized("user_disabled")
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(errors={"password": [f"at least {MIN_PASSWORD} characters"]})
    user.password_hash = hash_password(password)
    db.session.delete(record)
    return user
