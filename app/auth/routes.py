"""Login, refresh, logout and who-am-I."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint

from app.auth import services
from app.auth.schemas import ActivateIn, LoginIn, MeOut, TokensOut
from app.auth.tokens import auth_required, current_session, current_user, token_claims
from app.database import utcnow
from app.extensions import limiter

blp = Blueprint("auth", __name__, description="Login sessions bound to a device")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_key() -> str:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return f"login:{request.remote_addr}:{str(username)[:64]}"


@blp.route("/auth/login", methods=["POST"])
@limiter.limit(_login_limit, key_func=_login_key)
@limiter.limit(lambda: current_app.config["LOGIN_IP_RATE_LIMIT"], key_func=lambda: f"login-ip:{request.remote_addr}")
@blp.arguments(LoginIn)
@blp.response(200, TokensOut)
@blp.doc(security=[])
def login(data):
    """Log in on a device: a short access token and a long refresh token bound to that device."""
    tokens, user = services.login(data["username"], data["password"], data["device_id"],
                                  request.headers.get("User-Agent"))
    return {**tokens, "user": user.to_dict(), "server_time": utcnow()}


@blp.route("/auth/activate", methods=["POST"])
@limiter.limit(_login_limit, key_func=_login_key)
@limiter.limit(lambda: current_app.config["LOGIN_IP_RATE_LIMIT"], key_func=lambda: f"login-ip:{request.remote_addr}")
@blp.arguments(ActivateIn)
@blp.response(200, TokensOut)
@blp.doc(security=[])
def activate(data):
    """First login of a new account with its one-time activation code: sets the password, then as login."""
    tokens, user = services.activate(data["username"], data["code"], data["password"], data["device_id"],
                                     request.headers.get("User-Agent"))
    return {**tokens, "user": user.to_dict(), "server_time": utcnow()}


@blp.route("/auth/refresh", methods=["POST"])
@blp.response(200, TokensOut)
@auth_required(refresh=True)
def refresh():
    """Rotate the refresh token (send it as the bearer). An old one used again revokes the device."""
    tokens, user = services.refresh(token_claims(), current_session())
    return {**tokens, "user": user.to_dict(), "server_time": utcnow()}


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
@auth_required()
def logout():
    """End this login for good (send the access token as the bearer)."""
    services.logout(current_session())


@blp.route("/me", methods=["GET"])
@blp.response(200, MeOut)
@auth_required()
def me():
    """Who I am, my role and my region (read from the database now, not from the token)."""
    session = current_session()
    return {**current_user.to_dict(), "device_id": session.device_id if session else None,
            "server_time": utcnow()}
