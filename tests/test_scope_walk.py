"""The scope walk: every route of the API, called by users of another township, gets nothing of township A.

Every rule in the app's URL map must appear in ROUTES below (a new route without an entry fails the first
test), with how to call it on township A's objects. An outsider must get 403/404, or an answer that holds
none of A's ids, codes, names or usernames.
"""

from __future__ import annotations

import io
import json

import pytest
from factories import MICRO_A1_1, OUTSIDERS, TOWN_A
from helpers import INSIDE_A1_1, Phone, fake_hash, new_id, note_op, report_op, transition_op, update_op

PUBLIC = {"/api/openapi.json", "/api/docs", "/api/docs/<path:filename>", "/", "/<pwapath:filename>",
          "/api/v1/auth/login", "/api/v1/auth/activate",
          # operations: liveness, readiness, counters (no object of any township)
          "/healthz", "/readyz", "/metrics"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute", "LOGIN_IP_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def town_a(client, auth):
    """A case, a conflict, a held op and a phone in township A."""
    worker = Phone(client, auth, "wanggeyuan", device_id="phone-of-town-a-01")
    reviewer = Phone(client, auth, "reviewer")
    case_id = worker.one(report_op(photos=[fake_hash("town-a-photo")], description="安阳街道的秘密隐患"))["case_id"]
    reviewer.one(update_op(case_id, 1, {"risk_level": "red"}))
    conflict = worker.one(update_op(case_id, 1, {"risk_level": "blue"}))["conflicts"][0]["conflict_id"]
    held_case = new_id()
    worker.one(note_op(held_case))
    created = client.post("/api/v1/uploads/", headers={**worker.headers, "Tus-Resumable": "1.0.0",
                                                        "Upload-Length": "100"})
    upload = created.headers["Location"].rsplit("/", 1)[1]
    # an admin event about A's grid worker (the reviewer disables and enables them): for the audit route
    worker_id = client.get("/api/v1/admin/people?q=wanggeyuan", headers=reviewer.headers).get_json()[0]["id"]
    client.post(f"/api/v1/admin/people/{worker_id}/disable", headers=reviewer.headers)
    client.post(f"/api/v1/admin/people/{worker_id}/enable", headers=reviewer.headers)
    return {"worker_id": worker_id, "case": case_id, "conflict": conflict, "device": worker.device_id,
            "held_case": held_case, "photo": fake_hash("town-a-photo"), "upload": upload}


def _sync_body(device_id, ops):
    return {"device_id": device_id, "ops": ops}


# (method, rule) -> function(client, headers, objs, phone) returning the response
ROUTES = {
    ("POST", "/api/v1/auth/refresh"): lambda c, h, o, p: c.post("/api/v1/auth/refresh", headers=p.refresh_headers),
    ("POST", "/api/v1/auth/logout"): lambda c, h, o, p: c.post("/api/v1/auth/logout", headers=h),
    ("GET", "/api/v1/me"): lambda c, h, o, p: c.get("/api/v1/me", headers=h),
    ("GET", "/api/v1/devices"): lambda c, h, o, p: c.get("/api/v1/devices", headers=h),
    ("POST", "/api/v1/devices/<device_id>/revoke"):
        lambda c, h, o, p: c.post(f"/api/v1/devices/{o['device']}/revoke", headers=h),
    ("GET", "/api/v1/regions"): lambda c, h, o, p: c.get("/api/v1/regions", headers=h),
    ("GET", "/api/v1/regions/locate"):
        lambda c, h, o, p: c.get(f"/api/v1/regions/locate?lat={INSIDE_A1_1[0]}&lon={INSIDE_A1_1[1]}", headers=h),
    ("GET", "/api/v1/regions/<code>"): lambda c, h, o, p: c.get(f"/api/v1/regions/{TOWN_A}", headers=h),
    ("GET", "/api/v1/regions/<code>/children"):
        lambda c, h, o, p: c.get(f"/api/v1/regions/{TOWN_A}/children", headers=h),
    ("GET", "/api/v1/regions/<code>/geojson"):
        lambda c, h, o, p: c.get(f"/api/v1/regions/{MICRO_A1_1}/geojson", headers=h),
    ("GET", "/api/v1/categories"): lambda c, h, o, p: c.get("/api/v1/categories", headers=h),
    ("GET", "/api/v1/workflow"): lambda c, h, o, p: c.get("/api/v1/workflow", headers=h),
    ("GET", "/api/v1/calendar"): lambda c, h, o, p: c.get("/api/v1/calendar?from=2026-09-01&to=2026-10-31", headers=h),
    ("GET", "/api/v1/cases/<case_id>"): lambda c, h, o, p: c.get(f"/api/v1/cases/{o['case']}", headers=h),
    # the ETag and counts are the caller's own: nothing of A's (tests/cases/test_loop_api.py: A's changes
    # leave an outsider's ETag as it was)
    ("GET", "/api/v1/cases/watch"): lambda c, h, o, p: c.get("/api/v1/cases/watch", headers=h),
    ("GET", "/api/v1/cases/<case_id>/assignees"):
        lambda c, h, o, p: c.get(f"/api/v1/cases/{o['case']}/assignees", headers=h),
    ("GET", "/api/v1/cases"): lambda c, h, o, p: c.get("/api/v1/cases?limit=200&sort=-updated_at", headers=h),
    # the ledger's emptiness for outsiders is checked in tests/cases/test_exports.py; here: A's region is a 404
    ("GET", "/api/v1/cases/export"):
        lambda c, h, o, p: c.get(f"/api/v1/cases/export?format=csv&region={TOWN_A}", headers=h),
    ("POST", "/api/v1/cases/<case_id>/transitions"):
        lambda c, h, o, p: c.post(f"/api/v1/cases/{o['case']}/transitions", json={"action": "accept", "base_version": 3},
                                  headers=h),
    ("POST", "/api/v1/cases/transitions"):
        lambda c, h, o, p: c.post("/api/v1/cases/transitions", json={
            "action": "accept", "cases": [{"id": o["case"], "base_version": 3}]}, headers=h),
    ("GET", "/api/v1/conflicts"): lambda c, h, o, p: c.get("/api/v1/conflicts?status=all", headers=h),
    ("POST", "/api/v1/conflicts/<conflict_id>/resolve"):
        lambda c, h, o, p: c.post(f"/api/v1/conflicts/{o['conflict']}/resolve", json={"choose": "client"},
                                  headers=h),
    ("POST", "/api/v1/sync"): lambda c, h, o, p: c.post("/api/v1/sync", headers=h, json=_sync_body(p.device_id, [
        note_op(o["case"]), update_op(o["case"], 1, {"description": "改掉"}),
        transition_op(o["case"], 2, "accept"), report_op(micro_grid=MICRO_A1_1)])),
    ("GET", "/api/v1/sync/changes"): lambda c, h, o, p: c.get("/api/v1/sync/changes", headers=h),
    ("GET", "/api/v1/sync/orphans"): lambda c, h, o, p: c.get("/api/v1/sync/orphans?older_than_hours=0", headers=h),
    # Photos are content-addressed: asking about a hash echoes only what the caller sent.
    ("POST", "/api/v1/media/missing"):
        lambda c, h, o, p: c.post("/api/v1/media/missing", json={"hashes": [fake_hash("outsider's own")]}, headers=h),
    ("PUT", "/api/v1/media/<sha256>"):  # other bytes under A's photo hash: refused (422), nothing stored
        lambda c, h, o, p: c.put(f"/api/v1/media/{o['photo']}", data=b"\xff\xd8\xff not that photo", headers=h),
    ("POST", "/api/v1/media"):
        lambda c, h, o, p: c.post("/api/v1/media", data={"file": (io.BytesIO(b"<svg/>"), "a.jpg")},
                                  content_type="multipart/form-data", headers=h),
    ("POST", "/api/v1/uploads/"):  # an upload of the outsider's own: created, nothing of A in it
        lambda c, h, o, p: c.post("/api/v1/uploads/", headers={**h, "Tus-Resumable": "1.0.0", "Upload-Length": "10"}),
    ("PATCH", "/api/v1/uploads/<upload_id>"):
        lambda c, h, o, p: c.patch(f"/api/v1/uploads/{o['upload']}", data=b"x", headers={
            **h, "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}),
    ("DELETE", "/api/v1/uploads/<upload_id>"):
        lambda c, h, o, p: c.delete(f"/api/v1/uploads/{o['upload']}", headers={**h, "Tus-Resumable": "1.0.0"}),
    ("GET", "/api/v1/media/<sha256>"): lambda c, h, o, p: c.get(f"/api/v1/media/{o['photo']}?variant=thumb", headers=h),
    ("GET", "/api/v1/stats"): lambda c, h, o, p: c.get(f"/api/v1/stats?region={TOWN_A}", headers=h),
    ("GET", "/api/v1/points"): lambda c, h, o, p: c.get(f"/api/v1/points?region={TOWN_A}", headers=h),
    ("GET", "/api/v1/admin/people"): lambda c, h, o, p: c.get("/api/v1/admin/people?limit=1000", headers=h),
    ("POST", "/api/v1/admin/people"): lambda c, h, o, p: c.post("/api/v1/admin/people", headers=h, json={
        "username": "intruder01", "role": "grid_worker", "region": "安阳街道/万松社区/万松社区第1网格"}),
    ("GET", "/api/v1/admin/people/<int:user_id>"):
        lambda c, h, o, p: c.get(f"/api/v1/admin/people/{o['worker_id']}", headers=h),
    **{("POST", f"/api/v1/admin/people/<int:user_id>/{verb}"):
       (lambda verb: lambda c, h, o, p: c.post(f"/api/v1/admin/people/{o['worker_id']}/{verb}", headers=h))(verb)  # noqa: B023
       for verb in ("disable", "enable", "reset")},
    ("POST", "/api/v1/admin/people/<int:user_id>/move"):
        lambda c, h, o, p: c.post(f"/api/v1/admin/people/{o['worker_id']}/move", headers=h, json={"region": TOWN_A}),
    ("POST", "/api/v1/admin/people/roster"): lambda c, h, o, p: c.post(
        "/api/v1/admin/people/roster?dry_run=false", headers=h, content_type="multipart/form-data", data={"file": (
            io.BytesIO("username,display_name,phone,role,region\nintruder02,x,,grid_worker,安阳街道/万松社区\n".encode()),
            "r.csv")}),
    ("GET", "/api/v1/admin/audit"): lambda c, h, o, p: c.get("/api/v1/admin/audit?limit=500", headers=h),
    ("GET", "/api/v1/points/ledger"): lambda c, h, o, p: c.get("/api/v1/points/ledger", headers=h),
    # the rules are nationwide and admins' alone: everyone else gets 403
    ("GET", "/api/v1/admin/categories"): lambda c, h, o, p: c.get("/api/v1/admin/categories", headers=h),
    ("POST", "/api/v1/admin/categories"): lambda c, h, o, p: c.post("/api/v1/admin/categories", headers=h, json={
        "code": "new_kind", "name_zh": "新类别", "name_en": "New", "roles": ["volunteer"]}),
    ("PUT", "/api/v1/admin/categories/order"):
        lambda c, h, o, p: c.put("/api/v1/admin/categories/order", headers=h, json={"codes": ["other"]}),
    ("PATCH", "/api/v1/admin/categories/<code>"):
        lambda c, h, o, p: c.patch("/api/v1/admin/categories/fire_hazard", headers=h, json={"name_zh": "改名"}),
    ("DELETE", "/api/v1/admin/categories/<code>"):
        lambda c, h, o, p: c.delete("/api/v1/admin/categories/other", headers=h),
    ("GET", "/api/v1/admin/sla-rules"): lambda c, h, o, p: c.get("/api/v1/admin/sla-rules", headers=h),
    ("POST", "/api/v1/admin/sla-rules"): lambda c, h, o, p: c.post("/api/v1/admin/sla-rules", headers=h, json={
        "stage": "accept", "risk_level": "red", "category": "gas_safety", "limit_minutes": 30, "clock": "natural"}),
    ("PATCH", "/api/v1/admin/sla-rules/<int:rule_id>"):
        lambda c, h, o, p: c.patch("/api/v1/admin/sla-rules/1", headers=h, json={"limit_minutes": 1}),
    ("DELETE", "/api/v1/admin/sla-rules/<int:rule_id>"):
        lambda c, h, o, p: c.delete("/api/v1/admin/sla-rules/1", headers=h),
    ("GET", "/api/v1/admin/calendar/coverage"): lambda c, h, o, p: c.get("/api/v1/admin/calendar/coverage", headers=h),
    ("POST", "/api/v1/admin/calendar/import"): lambda c, h, o, p: c.post(
        "/api/v1/admin/calendar/import?dry_run=false", headers=h, json={"csv": "2026-10-01,workday,x"}),
    ("POST", "/api/v1/admin/regions/import"): lambda c, h, o, p: c.post(
        "/api/v1/admin/regions/import?dry_run=false", headers=h, json={"geojson": {
            "type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None, "properties": {
                "code": TOWN_A, "name": "改名", "level": "township", "parent": "330381"}}]}}),
    ("GET", "/open311/v2/services.json"):
        lambda c, h, o, p: c.get(f"/open311/v2/services.json?jurisdiction_id={TOWN_A}", headers=h),
    ("GET", "/open311/v2/requests.json"): lambda c, h, o, p: c.get("/open311/v2/requests.json", headers=h),
    ("POST", "/open311/v2/requests.json"): lambda c, h, o, p: c.post("/open311/v2/requests.json", headers=h, data={
        "service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "description": "越界上报"}),
    ("GET", "/open311/v2/requests/<request_id>.json"):
        lambda c, h, o, p: c.get(f"/open311/v2/requests/{o['case']}.json", headers=h),
}
# Uploads act on the caller's own bytes, not on A's objects: refusing bad bytes (422) is their answer.
UPLOADS = {"/api/v1/media/<sha256>", "/api/v1/media"}
# Creating people in A's places: A's regions are unknown to an outsider, so the rows are refused (422) as bad.
CREATIONS = {"/api/v1/admin/people", "/api/v1/admin/people/roster"}


def _api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC or rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule.rule


def test_every_route_is_in_the_walk(app):
    missing = sorted(set(_api_rules(app)) - set(ROUTES))
    assert not missing, f"add these routes to the scope walk: {missing}"


class _OutsiderPhone(Phone):
    def __init__(self, client, auth, username):
        super().__init__(client, auth, username)
        self.refresh_headers = {"Authorization": f"Bearer {self.tokens['refresh_token']}"}


@pytest.mark.parametrize("username", OUTSIDERS)
def test_outsiders_get_nothing_of_township_a(app, client, auth, town_a, username):
    secrets = [town_a["case"], town_a["conflict"], town_a["device"], town_a["held_case"], town_a["photo"], town_a["upload"],
               "wanggeyuan", "安阳街道", TOWN_A, "秘密隐患"]
    for (method, rule), call in sorted(ROUTES.items()):
        phone = _OutsiderPhone(client, auth, username)  # fresh tokens: logout and refresh spend them
        response = call(client, phone.headers, town_a, phone)
        text = response.get_data(as_text=True)
        assert response.status_code < 500, (method, rule, text)
        leaked = [s for s in secrets if s in text and not (rule == "/api/v1/sync" and s == town_a["case"])]
        assert not leaked, f"{username} {method} {rule} leaked {leaked}: {text[:300]}"
        if rule == "/api/v1/sync":
            # every op type on A's case is answered exactly as the same op on a case nobody reported
            results = response.get_json()["results"]
            assert [r["status"] for r in results] == ["held"] * 3 + ["rejected"], results
            assert results[3]["code"] == "out_of_scope", results  # a report placed in A's micro-grid
            unknown = new_id()
            twins = phone.sync(note_op(unknown), update_op(unknown, 1, {"description": "改掉"}),
                               transition_op(unknown, 2, "accept"), client_time=None)["results"]
            def blank(r):
                return {**r, "op_id": None, "case_id": None}

            assert [blank(r) for r in results[:3]] == [blank(r) for r in twins], (results, twins)
        elif response.status_code == 200 and rule not in (
                "/api/v1/me", "/api/v1/regions", "/api/v1/categories", "/api/v1/workflow", "/api/v1/calendar",
                "/api/v1/auth/refresh", "/api/v1/cases/watch",
                "/api/v1/media/missing"):
            body = response.get_json()
            empty = body in ([], {}) or (isinstance(body, dict) and body.get("changes") == []) or (
                rule == "/api/v1/points/ledger" and body["entries"] == [] and body["total"] == 0)
            mine_only = rule == "/api/v1/devices" and all(d["username"] == username for d in body)
            # a reviewer of B lists B's people (the leak check above holds none of A's in it)
            own_people = rule == "/api/v1/admin/people" and all(not p["region"].startswith(TOWN_A) for p in body)
            assert empty or mine_only or own_people, f"{username} {method} {rule} got {json.dumps(body)[:300]}"
        elif rule == "/api/v1/uploads/" and response.status_code == 201:
            assert not response.get_data(), "a creation answers with headers only"
        elif response.status_code not in (200, 204) and not (rule in UPLOADS | CREATIONS
                                                              and response.status_code == 422):
            assert response.status_code in (403, 404), (method, rule, response.status_code, text)
