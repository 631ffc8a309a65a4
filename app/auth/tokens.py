"""JWT wiring: our problem JSON for every token error, and the user read from the database on each call.

Tokens carry only who (``sub``) and which login session (``sid``); role, region and whether the account and
the device are still allowed are read from the database every time, so disabling a user, moving them to
another region or revoking a phone takes effect on their very next request.
"""

from __future__ import annotations

from functools import wraps

from flask import g
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from app.errors import Forbidden, Unauthorized, message, problem
from app.extensions import db, jwt


def _problem_401(code: str):
    return problem(401, code, headers={"WWW-Authenticate": 'Bearer realm="gridcase"'})


@jwt.unauthorized_loader
def _missing(reason: str):
    return _problem_401("token_missing")


@jwt.invalid_token_loader
def _invalid(reason: str):
    if "Only" in reason and "tokens are allowed" in reason:
        return _problem_401("token_wrong_type")
    return _problem_401("token_invalid")


@jwt.expired_token_loader
def _expired(jwt_header, jwt_payload):
    return _problem_401("token_expired")


@jwt.revoked_token_loader
def _revoked(jwt_header, jwt_payload):
    return _problem_401("token_revoked")


@jwt.user_lookup_error_loader
def _lookup_error(jwt_header, jwt_payload):
    return _problem_401("token_revoked")


@jwt.needs_fresh_token_loader
def _needs_fresh(jwt_header, jwt_payload):
    return _problem_401("token_invalid")


@jwt.token_verification_failed_loader
def _verification_failed(jwt_header, jwt_payload):
    return _problem_401("token_invalid")


@jwt.user_lookup_loader
def _load_user(jwt_header, jwt_payload):
    """The session and its user, fresh from the database; refuses revoked sessions and disabled users."""
    from app.auth.models import AuthSession

    session = db.session.get(AuthSession, jwt_payload.get("sid", ""))
    if session is None or str(session.user_id) != jwt_payload.get("sub"):
        raise Unauthorized("token_revoked", headers={"WWW-Authenticate": 'Bearer realm="gridcase"'})
    if session.revoked_at is not None:
        raise Unauthorized("token_revoked", headers={"WWW-Authenticate": 'Bearer realm="gridcase"'})
    if not session.user.is_active:
        raise Unauthorized("user_disabled", headers={"WWW-Authenticate": 'Bearer realm="gridcase"'})
    g.auth_session = session
    return session.user


def auth_required(*roles: str, refresh: bool = False):
    """View decorator: a valid token of a live session and, when given, one of ``roles``."""

    def decorator(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            # The rate limiter's key decoded the token without the database (app/ops/security.py); the
            # session and user are looked up here, once per request.
            verify_jwt_in_request(refresh=refresh)
            if roles and current_user.role not in roles:
                raise Forbidden()
            return fn(*args, **kwargs)

        return wrapper

    return decorator


def current_session():
    return g.get("auth_session")


def token_claims() -> dict:
    return get_jwt()


__all__ = ["auth_required", "current_session", "current_user", "message", "token_claims"]
