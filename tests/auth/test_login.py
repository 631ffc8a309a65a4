"""Login, refresh with rotation and reuse detection, logout, revocation, disabled and moved users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import GRID_A1, TOWN_B

from app.extensions import db


def test_login_returns_tokens_user_and_server_time(client):
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                 "device_id": "phone-0001"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["role"] == "grid_worker"
    assert body["user"]["region"] == GRID_A1
    assert body["server_time"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["username"] == "wanggeyuan"
    assert me.get_json()["device_id"] == "phone-0001"


@pytest.mark.parametrize("username,password", [("wanggeyuan", "wrong-password"), ("nobody", "whatever-123")])
def test_bad_credentials_are_one_error(client, username, password):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password,
                                                 "device_id": "phone-0001"})
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "invalid_credentials"


def test_login_validation_errors_name_the_field(client):
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "x", "device_id": "a"})
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "validation_failed"
    assert "device_id" in body["errors"]


def test_login_refuses_unknown_keys(client):
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                 "device_id": "phone-0001", "role": "admin"})
    assert r.status_code == 422
    assert "role" in r.get_json()["errors"]


def test_refresh_rotates_and_reuse_revokes_the_device(client, auth):
    tokens = auth.login("wanggeyuan", device_id="phone-rotate-1")
    old_refresh = tokens["refresh_token"]
    r = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {old_refresh}"})
    assert r.status_code == 200
    new = r.get_json()
    assert new["refresh_token"] != old_refresh
    # the new access token works
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    # the old refresh token presented again: theft. The device's sessions all end.
    r = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {old_refresh}"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "refresh_reused"
    for token in (new["access_token"], new["refresh_token"]):
        path = "/api/v1/me" if token == new["access_token"] else "/api/v1/auth/refresh"
        method = client.get if path == "/api/v1/me" else client.post
        r = method(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.get_json()["code"] == "token_revoked"


def test_access_token_is_not_a_refresh_token(client, auth):
    tokens = auth.login("wanggeyuan")
    r = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_wrong_type"
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_wrong_type"


def test_logout_ends_the_session_for_good(app, client, auth):
    tokens = auth.login("wanggeyuan")
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert client.get("/api/v1/me", headers=h).get_json()["code"] == "token_revoked"
    r = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert r.status_code == 401
    # "for good": a new app (a restarted server) on the same database still refuses it
    from app import create_app

    again = create_app(dict(app.config)).test_client()
    assert again.get("/api/v1/me", headers=h).status_code == 401


def test_revoke_device_by_reviewer_of_the_users_region(client, auth):
    worker = auth.login("wanggeyuan", device_id="lost-phone-01")
    h_worker = {"Authorization": f"Bearer {worker['access_token']}"}
    # a reviewer of another township cannot even see the device
    r = client.post("/api/v1/devices/lost-phone-01/revoke", headers=auth.headers("reviewer_b"))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=h_worker).status_code == 200
    # a grid worker may not revoke
    r = client.post("/api/v1/devices/lost-phone-01/revoke", headers=auth.headers("worker_a2"))
    assert r.status_code == 403
    r = client.post("/api/v1/devices/lost-phone-01/revoke", headers=auth.headers("reviewer"))
    assert r.status_code == 200
    assert r.get_json()["revoked_at"]
    assert client.get("/api/v1/me", headers=h_worker).get_json()["code"] == "token_revoked"
    # the lost phone cannot log in again, even with the right password
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                 "device_id": "lost-phone-01"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "device_revoked"
    # another phone can
    assert auth.login("wanggeyuan", device_id="new-phone-01")["access_token"]


def test_admin_may_revoke_any_device(client, auth):
    auth.login("worker_b", device_id="phone-b-0001")
    r = client.post("/api/v1/devices/phone-b-0001/revoke", headers=auth.headers("admin"))
    assert r.status_code == 200


def test_disabled_user_is_refused_at_once(app, client, auth, runner):
    tokens = auth.login("wanggeyuan")
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    result = runner.invoke(args=["users", "disable", "wanggeyuan"])
    assert result.exit_code == 0, result.output
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                 "device_id": "phone-0002"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "user_disabled"


def test_moved_user_is_rescoped_at_once(client, auth, runner):
    h = auth.headers("reviewer")
    assert client.get("/api/v1/regions/330381001", headers=h).status_code == 200
    result = runner.invoke(args=["users", "move", "reviewer", "--region", TOWN_B])
    assert result.exit_code == 0, result.output
    # the same token now sees township B and not A
    assert client.get("/api/v1/me", headers=h).get_json()["region"] == TOWN_B
    assert client.get("/api/v1/regions/330381001", headers=h).status_code == 404
    assert client.get(f"/api/v1/regions/{TOWN_B}", headers=h).status_code == 200


def test_expired_access_token(app, client, auth):
    from flask_jwt_extended import create_access_token

    tokens = auth.login("wanggeyuan")
    with app.app_context():
        from flask_jwt_extended import decode_token

        claims = decode_token(tokens["access_token"])
        expired = create_access_token(identity=claims["sub"], additional_claims={"sid": claims["sid"]},
                                      expires_delta=timedelta(seconds=-5))
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_expired"


@pytest.mark.parametrize("header,code", [(None, "token_missing"), ("Bearer not.a.jwt", "token_invalid"),
                                         ("Basic abc", "token_missing")])
def test_token_errors_are_problem_json(client, header, code):
    r = client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == code
    assert "WWW-Authenticate" in r.headers


def test_token_signed_with_another_key_is_invalid(app, client):
    import jwt as pyjwt

    forged = pyjwt.encode({"sub": "1", "sid": "x", "type": "access", "fresh": False, "jti": "j",
                           "exp": 9999999999, "iat": 0, "nbf": 0}, "another-key-0123456789abcdef0123456789",
                          algorithm="HS256")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_invalid"


def test_login_is_rate_limited(client):
    for _ in range(10):
        client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "wrong-password",
                                                 "device_id": "phone-0003"})
    r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                 "device_id": "phone-0003"})
    assert r.status_code == 429
    assert r.get_json()["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    # another username from the same address is not blocked by this one's failures
    r = client.post("/api/v1/auth/login", json={"username": "reviewer", "password": "Gridcase-review-2026",
                                                 "device_id": "phone-0004"})
    assert r.status_code == 200


def test_passwords_are_argon2id(app_ctx):
    from sqlalchemy import select

    from app.users.models import User

    user = db.session.scalar(select(User).where(User.username == "wanggeyuan"))
    assert user.password_hash.startswith("$argon2id$")
    assert "Gridcase" not in user.password_hash


def test_production_password_parameters():
    from app.auth.passwords import DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST, _hasher_for

    hasher, _ = _hasher_for(DEFAULT_TIME_COST, DEFAULT_MEMORY_KIB)
    h = hasher.hash("correct horse battery staple")
    assert "m=65536,t=3,p=1" in h
    assert hasher.verify(h, "correct horse battery staple")


def test_a_request_verifies_its_token_once(app, client, auth):
    """The rate limiter's keys (a sync is limited per user and per device) decode the token without the
    database; the view verifies it: the token's session and user are looked up once per request, and a
    revoked session is refused."""
    from app.extensions import jwt

    login = auth.login("wanggeyuan")
    h = {"Authorization": f"Bearer {login['access_token']}"}
    envelope = {"device_id": login["device_id"], "ops": []}
    lookup = jwt._user_lookup_callback
    calls = []

    def counted(*args):
        calls.append(args)
        return lookup(*args)

    jwt._user_lookup_callback = counted
    try:
        assert client.post("/api/v1/sync", json=envelope, headers=h).status_code == 200
        assert len(calls) == 1
        assert client.post("/api/v1/auth/logout", headers=h).status_code in (200, 204)
        r = client.post("/api/v1/sync", json=envelope, headers=h)
        assert r.status_code == 401 and r.get_json()["code"] == "token_revoked"
    finally:
        jwt._user_lookup_callback = lookup
