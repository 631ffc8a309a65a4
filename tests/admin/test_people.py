"""People in the admin console: listing with names, create, disable, enable, move, under scope, audited."""

from __future__ import annotations

from factories import GRID_A1, GRID_A2, GRID_B1
from sqlalchemy import select, update

from app.devices.models import Device
from app.extensions import db
from app.users.models import User


def _id(username):
    return db.session.scalar(select(User.id).where(User.username == username))


def test_list_shows_names_last_contact_and_unsent_work(app_ctx, client, auth):
    worker = auth.login("wanggeyuan", device_id="phone-of-wang-0001")
    db.session.execute(update(Device).where(Device.id == "phone-of-wang-0001").values(outbox_pending=7))
    db.session.commit()
    people = client.get("/api/v1/admin/people?q=wanggeyuan", headers=auth.headers("reviewer")).get_json()
    assert len(people) == 1 and worker
    person = people[0]
    assert person["region"] == GRID_A1 and person["region_path"] == "安阳街道/万松社区/万松社区第1网格"
    assert person["role_label"] == "网格员" and person["outbox_pending"] == 7 and person["last_seen"]
    outsider = client.get("/api/v1/admin/people", headers=auth.headers("reviewer_b")).get_json()
    assert "wanggeyuan" not in {p["username"] for p in outsider} and outsider
    assert client.get(f"/api/v1/admin/people?region={GRID_A1}", headers=auth.headers("reviewer_b")).get_json() == []
    assert client.get("/api/v1/admin/people", headers=auth.headers("wanggeyuan")).status_code == 403


def test_disable_enable_move_are_audited(app_ctx, client, auth):
    headers = auth.headers("reviewer")
    phone = auth.headers("wanggeyuan")
    uid = _id("wanggeyuan")
    assert client.post(f"/api/v1/admin/people/{uid}/disable", headers=headers).get_json()["disabled"] is True
    assert client.get("/api/v1/me", headers=phone).get_json()["code"] == "token_revoked"
    refused = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                       "device_id": "phone-of-wang-0002"})
    assert refused.get_json()["code"] == "user_disabled"
    assert client.post(f"/api/v1/admin/people/{uid}/enable", headers=headers).get_json()["disabled"] is False
    moved = client.post(f"/api/v1/admin/people/{uid}/move", headers=headers,
                        json={"region": "安阳街道/万松社区/万松社区第2网格"}).get_json()
    assert moved["region"] == GRID_A2
    events = client.get("/api/v1/admin/audit?target_type=user", headers=headers).get_json()
    assert [e["action"] for e in events] == ["user.move", "user.enable", "user.disable"]
    assert events[2]["summary"].endswith("停用") and events[0]["changes"] == {"region": [GRID_A1, GRID_A2]}
    assert events[0]["actor_display_name"]


def test_reviewers_manage_only_field_people_of_their_township(app_ctx, client, auth):
    headers = auth.headers("reviewer")
    assert client.post(f"/api/v1/admin/people/{_id('worker_b')}/disable", headers=headers).status_code == 404
    assert client.post(f"/api/v1/admin/people/{_id('village_reviewer')}/disable", headers=headers).status_code == 403
    moved_out = client.post(f"/api/v1/admin/people/{_id('wanggeyuan')}/move", headers=headers, json={"region": GRID_B1})
    assert moved_out.status_code == 422
    created = client.post("/api/v1/admin/people", headers=headers, json={
        "username": "newrev", "role": "reviewer", "region": GRID_A1})
    assert created.status_code == 403 and created.get_json()["code"] == "person_not_manageable"
    taken = client.post("/api/v1/admin/people", headers=headers, json={
        "username": "zhiyuanzhe", "role": "volunteer", "region": GRID_A1})
    assert taken.status_code == 409
    assert db.session.scalar(select(User.disabled_at).where(User.username == "worker_b")) is None


def test_an_id_no_column_can_hold_is_no_one(client, auth):
    """A 35-digit id is a 404 like any unknown person, not a database overflow (found by the API fuzzer)."""
    headers = auth.headers("admin")
    huge = "88231547379435606339981913033277440"
    assert client.get(f"/api/v1/admin/people/{huge}", headers=headers).status_code == 404
    refused = client.post(f"/api/v1/admin/people/{huge}/reset", headers=headers)
    assert refused.status_code == 404 and refused.get_json()["code"] == "not_found"
