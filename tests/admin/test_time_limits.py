"""Time limits in the admin console: by colour, category and handling level, with their clock; a change
applies to the stages that start after it, never to a running one."""

from __future__ import annotations

from helpers import Phone, report_op

URL = "/api/v1/admin/sla-rules"


def _rule(client, auth, stage, risk, category=None, level=None):
    rules = client.get(URL, headers=auth.headers("admin")).get_json()
    return next(r for r in rules
                if (r["stage"], r["risk_level"], r["category"], r["level"]) == (stage, risk, category, level))


def _stage(client, auth, case_id):
    return client.get(f"/api/v1/cases/{case_id}", headers=auth.headers("reviewer")).get_json()["running_stage"]


def test_the_defaults_are_listed_with_their_clocks(client, auth):
    assert _rule(client, auth, "accept", "red") | {"id": 0} == {
        "id": 0, "stage": "accept", "risk_level": "red", "category": None, "level": None,
        "limit_minutes": 120, "clock": "natural"}
    assert _rule(client, auth, "close", "blue")["clock"] == "working"


def test_an_edit_applies_to_new_stages_only_and_is_audited(client, auth):
    phone = Phone(client, auth, "wanggeyuan")
    before = phone.one(report_op(risk_level="red"))["case_id"]
    rule = _rule(client, auth, "accept", "red")
    r = client.patch(f"{URL}/{rule['id']}", json={"limit_minutes": 45}, headers=auth.headers("admin"))
    assert r.status_code == 200 and r.get_json()["limit_minutes"] == 45
    after = phone.one(report_op(risk_level="red"))["case_id"]
    assert _stage(client, auth, before)["limit_minutes"] == 120
    assert _stage(client, auth, after)["limit_minutes"] == 45
    event = client.get("/api/v1/admin/audit?action=sla_rule.update", headers=auth.headers("admin")).get_json()[0]
    assert event["changes"] == {"limit_minutes": [120, 45]} and event["region_code"] is None


def test_a_rule_for_one_category_wins_over_the_general_one(client, auth):
    r = client.post(URL, json={"stage": "accept", "risk_level": "red", "category": "gas_safety",
                               "limit_minutes": 30, "clock": "natural"}, headers=auth.headers("admin"))
    assert r.status_code == 201, r.get_json()
    phone = Phone(client, auth, "wanggeyuan")
    gas = phone.one(report_op(risk_level="red", category="gas_safety"))["case_id"]
    fire = phone.one(report_op(risk_level="red", category="fire_hazard"))["case_id"]
    assert _stage(client, auth, gas)["limit_minutes"] == 30
    assert _stage(client, auth, fire)["limit_minutes"] == 120
    same = client.post(URL, json={"stage": "accept", "risk_level": "red", "category": "gas_safety",
                                  "limit_minutes": 60, "clock": "working"}, headers=auth.headers("admin"))
    assert same.status_code == 409 and same.get_json()["code"] == "conflict"
    # a category that names a time limit is in use
    assert client.delete("/api/v1/admin/categories/gas_safety", headers=auth.headers("admin")).status_code == 409
    assert client.delete(f"{URL}/{r.get_json()['id']}", headers=auth.headers("admin")).status_code == 204


def test_bad_rules_are_refused(client, auth):
    admin = auth.headers("admin")
    for body in ({"stage": "accept", "risk_level": "green", "limit_minutes": 5, "clock": "natural"},
                 {"stage": "accept", "risk_level": "red", "limit_minutes": 0, "clock": "natural"},
                 {"stage": "accept", "risk_level": "red", "limit_minutes": 5, "clock": "lunar"}):
        r = client.post(URL, json=body, headers=admin)
        assert r.status_code == 422 and r.get_json()["code"] == "validation_failed", body
    r = client.post(URL, json={"stage": "accept", "risk_level": "red", "category": "nope", "limit_minutes": 5,
                               "clock": "natural"}, headers=admin)
    assert r.status_code == 404
    assert client.patch(f"{URL}/999999", json={"limit_minutes": 5}, headers=admin).status_code == 404
    assert client.get(URL, headers=auth.headers("reviewer")).status_code == 403
