"""The audit log of admin actions: recorded with the change, listed newest first, under scope."""

from __future__ import annotations

from factories import GRID_A1, GRID_B1
from sqlalchemy import select

from app.admin import audit
from app.extensions import db
from app.users.models import User


def _user(username: str) -> User:
    return db.session.scalar(select(User).where(User.username == username))


def _record_three():
    admin = _user("admin")
    audit.record(admin, "user.disable", "user", _user("wanggeyuan").id, region_code=GRID_A1,
                 summary="张网格员 停用", changes={"disabled": [False, True]})
    audit.record(admin, "user.disable", "user", _user("worker_b").id, region_code=GRID_B1, summary="worker_b 停用")
    audit.record(admin, "category.rename", "category", "fire", summary="消防隐患 → 消防安全隐患",
                 changes=audit.diff({"name": "消防隐患", "order": 1}, {"name": "消防安全隐患", "order": 1}))
    db.session.commit()


def test_the_admin_sees_every_event_newest_first(app_ctx, client, auth):
    _record_three()
    response = client.get("/api/v1/admin/audit", headers=auth.headers("admin"))
    assert response.status_code == 200
    events = response.get_json()
    assert [e["action"] for e in events] == ["category.rename", "user.disable", "user.disable"]
    assert events[0]["changes"] == {"name": ["消防隐患", "消防安全隐患"]}  # diff keeps only what changed
    assert events[0]["actor_username"] == "admin"


def test_a_reviewer_sees_only_their_townships_events(app_ctx, client, auth):
    _record_three()
    events = client.get("/api/v1/admin/audit", headers=auth.headers("reviewer")).get_json()
    assert [e["summary"] for e in events] == ["张网格员 停用"]
    outsider = client.get("/api/v1/admin/audit", headers=auth.headers("reviewer_b")).get_json()
    assert [e["summary"] for e in outsider] == ["worker_b 停用"]


def test_filters_and_refusals(app_ctx, client, auth):
    _record_three()
    headers = auth.headers("admin")
    only = client.get("/api/v1/admin/audit?target_type=category", headers=headers).get_json()
    assert [e["target_id"] for e in only] == ["fire"]
    assert client.get("/api/v1/admin/audit?limit=0", headers=headers).status_code == 422
    refused = client.get("/api/v1/admin/audit", headers=auth.headers("wanggeyuan"))
    assert refused.status_code == 403 and refused.get_json()["code"]
