"""One-time activation codes: the first login sets the password; a code works once and expires."""

from __future__ import annotations

from datetime import timedelta

from factories import GRID_A1
from sqlalchemy import select, update

from app.auth.models import ActivationCode
from app.database import utcnow
from app.extensions import db


def _create(client, auth, username="newgw"):
    answer = client.post("/api/v1/admin/people", headers=auth.headers("admin"), json={
        "username": username, "display_name": "新网格员", "phone": "13812345678", "role": "grid_worker",
        "region": GRID_A1})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def _activate(client, username, code, password="New-password-1", device="phone-new-000001"):
    return client.post("/api/v1/auth/activate", json={"username": username, "code": code, "password": password,
                                                      "device_id": device})


def test_activate_sets_the_password_once(app_ctx, client, auth):
    person = _create(client, auth)
    code = person["activation_code"]
    stored = db.session.scalar(select(ActivationCode.code_hash))
    assert code not in stored and len(stored) == 64  # only the keyed hash
    assert client.post("/api/v1/auth/login", json={"username": "newgw", "password": "!activation-pending",
                                                    "device_id": "phone-new-000001"}).status_code == 401
    assert _activate(client, "newgw", "WRONGCODE2").get_json()["code"] == "activation_invalid"
    tokens = _activate(client, "newgw", code.lower())
    assert tokens.status_code == 200 and tokens.get_json()["user"]["username"] == "newgw"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens.get_json()['access_token']}"})
    assert me.get_json()["role"] == "grid_worker"
    assert _activate(client, "newgw", code).status_code == 401  # spent
    assert auth.login("newgw", "New-password-1")["access_token"]


def test_expired_short_password_and_unknown_user(app_ctx, client, auth, app):
    person = _create(client, auth)
    assert _activate(client, "newgw", person["activation_code"], password="short").status_code == 422
    assert _activate(client, "nobody", person["activation_code"]).get_json()["code"] == "activation_invalid"
    db.session.execute(update(ActivationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert _activate(client, "newgw", person["activation_code"]).get_json()["code"] == "activation_expired"


def test_reset_forces_a_new_login_and_issues_a_new_code(app_ctx, client, auth):
    person = _create(client, auth)
    phone = _activate(client, "newgw", person["activation_code"]).get_json()
    bearer = {"Authorization": f"Bearer {phone['access_token']}"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    reset = client.post(f"/api/v1/admin/people/{person['id']}/reset", headers=auth.headers("admin")).get_json()
    assert reset["activation_code"] != person["activation_code"] and reset["activated"] is False
    assert client.get("/api/v1/me", headers=bearer).get_json()["code"] == "token_revoked"
    assert client.post("/api/v1/auth/login", json={"username": "newgw", "password": "New-password-1",
                                                    "device_id": "phone-new-000001"}).status_code == 401
    assert _activate(client, "newgw", reset["activation_code"], password="Other-pass-22").status_code == 200


def test_activation_is_rate_limited_like_login(app_ctx, client, auth, app):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    person = _create(client, auth)
    answers = [_activate(client, "newgw", "BADCODE234").status_code for _ in range(5)]
    assert answers[:3] == [401, 401, 401] and 429 in answers[3:]
    assert person["id"]
