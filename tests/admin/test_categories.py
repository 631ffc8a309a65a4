"""Categories in the admin console: add, rename, reorder, who may report, deactivate, delete only unused."""

from __future__ import annotations

from helpers import Phone, report_op

URL = "/api/v1/admin/categories"


def _audit(client, auth, action):
    return client.get(f"/api/v1/admin/audit?action={action}", headers=auth.headers("admin")).get_json()


def test_rename_and_reorder_change_the_report_pickers_order_and_are_audited(client, auth):
    admin = auth.headers("admin")
    r = client.patch(f"{URL}/other", json={"name_zh": "其他事项", "name_en": "Other matters"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["name_zh"] == "其他事项"
    r = client.put(f"{URL}/order", json={"codes": ["other", "gas_safety"]}, headers=admin)
    assert r.status_code == 200
    picker = client.get("/api/v1/categories", headers=auth.headers("wanggeyuan")).get_json()
    assert [c["code"] for c in picker[:3]] == ["other", "gas_safety", "fire_hazard"]
    assert picker[0]["name_zh"] == "其他事项" and picker[0]["name_en"] == "Other matters"
    [event] = _audit(client, auth, "category.rename")
    assert event["region_code"] is None and event["changes"]["name_zh"] == ["其他", "其他事项"]
    assert _audit(client, auth, "category.reorder")[0]["changes"]["order"][1][:2] == ["other", "gas_safety"]


def test_a_role_taken_off_a_category_may_no_longer_report_it(client, auth):
    r = client.patch(f"{URL}/fire_hazard", json={"roles": ["grid_worker", "reviewer", "admin"]},
                     headers=auth.headers("admin"))
    assert r.status_code == 200
    result = Phone(client, auth, "zhiyuanzhe").one(report_op(category="fire_hazard"))
    assert result["status"] == "rejected" and result["code"] == "forbidden", result
    assert Phone(client, auth, "wanggeyuan").one(report_op(category="fire_hazard"))["status"] == "applied"


def test_a_deactivated_category_leaves_the_picker_and_is_refused(client, auth):
    assert client.patch(f"{URL}/sanitation", json={"active": False}, headers=auth.headers("admin")).status_code == 200
    picker = client.get("/api/v1/categories", headers=auth.headers("wanggeyuan")).get_json()
    assert "sanitation" not in [c["code"] for c in picker]
    every = client.get(URL, headers=auth.headers("admin")).get_json()
    assert {"code": "sanitation", "active": False}.items() <= next(c for c in every if c["code"] == "sanitation").items()
    result = Phone(client, auth, "wanggeyuan").one(report_op(category="sanitation"))
    assert result["status"] == "rejected" and result["code"] == "unknown_category", result


def test_a_new_category_comes_last_and_can_be_reported(client, auth):
    r = client.post(URL, json={"code": "parking", "name_zh": "违规停车", "name_en": "Illegal parking",
                               "roles": ["grid_worker"]}, headers=auth.headers("admin"))
    assert r.status_code == 201, r.get_json()
    picker = client.get("/api/v1/categories", headers=auth.headers("wanggeyuan")).get_json()
    assert picker[-1]["code"] == "parking"
    assert Phone(client, auth, "wanggeyuan").one(report_op(category="parking"))["status"] == "applied"
    again = client.post(URL, json={"code": "parking", "name_zh": "x", "name_en": "x", "roles": []},
                        headers=auth.headers("admin"))
    assert again.status_code == 409 and again.get_json()["code"] == "category_exists"


def test_a_used_category_is_never_deleted_an_unused_one_is(client, auth):
    Phone(client, auth, "wanggeyuan").one(report_op(category="gas_safety"))
    r = client.delete(f"{URL}/gas_safety", headers=auth.headers("admin"))
    assert r.status_code == 409 and r.get_json()["code"] == "category_in_use"
    assert any(c["code"] == "gas_safety" for c in client.get(URL, headers=auth.headers("admin")).get_json())
    assert client.delete(f"{URL}/flood_typhoon", headers=auth.headers("admin")).status_code == 204
    assert all(c["code"] != "flood_typhoon" for c in client.get(URL, headers=auth.headers("admin")).get_json())
    assert _audit(client, auth, "category.delete")[0]["target_id"] == "flood_typhoon"


def test_bad_input_and_other_roles_are_refused(client, auth):
    admin = auth.headers("admin")
    bad = client.post(URL, json={"code": "Bad Code!", "name_zh": "x", "name_en": "x", "roles": ["boss"]},
                      headers=admin)
    assert bad.status_code == 422 and bad.get_json()["code"] == "validation_failed"
    assert client.patch(f"{URL}/other", json={"code": "renamed"}, headers=admin).status_code == 422
    assert client.put(f"{URL}/order", json={"codes": ["nope"]}, headers=admin).status_code == 404
    assert client.patch(f"{URL}/nope", json={"name_zh": "x"}, headers=admin).status_code == 404
    for user in ("reviewer", "wanggeyuan"):
        assert client.get(URL, headers=auth.headers(user)).status_code == 403
        assert client.patch(f"{URL}/other", json={"name_zh": "x"}, headers=auth.headers(user)).status_code == 403
