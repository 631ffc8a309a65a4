"""Open311 GeoReport v2 at /open311/v2: every answer validated against the published schemas
(tests/fixtures/open311/), reports created through the same service as the sync, and scope."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from factories import MICRO_A1_1, MICRO_A1_2, MICRO_B1_1, TOWN_A, TOWN_B
from helpers import INSIDE_A1_1, Phone, report_op, transition_op
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from sqlalchemy import update

SCHEMAS = Path(__file__).resolve().parent.parent / "fixtures" / "open311"
BASE = "/open311/v2"


def _registry() -> Registry:
    """The schemas refer to each other by file name (``"$ref": "service.json"``): register each under it."""
    resources = []
    for name in ("services.json", "service.json", "requests.json", "request.json", "service-definition.json",
                 "swagger.json"):
        contents = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        resources.append((name, Resource.from_contents(contents, default_specification=DRAFT7)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validate(body, schema: str) -> None:
    """Validate against a published schema by file name (or ``swagger.json#/definitions/...``), formats too."""
    validator = Draft7Validator({"$ref": schema}, registry=REGISTRY, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_validator_really_checks():
    with pytest.raises(AssertionError):
        validate([{"service_request_id": "x", "status": "pending", "service_code": "a",
                   "requested_datetime": "2026-11-22T08:00:00+08:00"}], "requests.json")
    with pytest.raises(AssertionError):
        validate([{"service_request_id": "x", "status": "open", "service_code": "a",
                   "requested_datetime": "yesterday"}], "requests.json")
    with pytest.raises(AssertionError):
        validate([{"service_code": "a", "service_name": "b", "type": "realtime"}], "services.json")


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


@pytest.fixture
def reviewer(client, auth):
    return Phone(client, auth, "reviewer")


def post(client, phone, data=None, json_body=None, status=200):
    if json_body is not None:
        response = client.post(f"{BASE}/requests.json", json=json_body, headers=phone.headers)
    else:
        response = client.post(f"{BASE}/requests.json", data=data, headers=phone.headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def get(client, phone, path, status=200):
    response = client.get(f"{BASE}/{path}", headers=phone.headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def load_case(app, case_id):
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        case = db.session.get(Case, case_id)
        db.session.expunge(case)
        return case


# ---------------------------------------------------------------------------------------------- services


def test_services(client, worker):
    body = get(client, worker, "services.json")
    validate(body, "services.json")
    by_code = {s["service_code"]: s for s in body}
    assert by_code["fire_hazard"] == {"service_code": "fire_hazard", "service_name": "消防隐患",
                                      "description": "Fire hazard", "metadata": False, "type": "realtime",
                                      "keywords": "fire_hazard,Fire hazard,消防隐患", "group": "消防安全"}
    assert by_code["other"]["group"] == "其他"
    assert get(client, worker, f"services.json?jurisdiction_id={MICRO_A1_1}") == body
    for outside in (TOWN_A, TOWN_B):  # a grid worker's jurisdiction is their grid
        assert get(client, worker, f"services.json?jurisdiction_id={outside}", status=404)["code"] == "not_found"


def test_unauthenticated_is_a_401_problem(client):
    for response in (client.get(f"{BASE}/services.json"), client.get(f"{BASE}/requests.json"),
                     client.post(f"{BASE}/requests.json", data={"service_code": "fire_hazard"})):
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == "token_missing"


# ---------------------------------------------------------------------------------------------- create


def test_create_form_encoded(app, client, worker):
    response = post(client, worker, data={"service_code": "fire_hazard", "lat": str(INSIDE_A1_1[0]),
                                           "long": str(INSIDE_A1_1[1]), "description": "楼道堆放杂物",
                                           "email": "ignored@example.com", "api_key": "ignored"})
    body = response.get_json()
    validate(body, "swagger.json#/definitions/RequestResponse")
    assert len(body) == 1 and set(body[0]) == {"service_request_id", "service_notice"}
    assert "安阳街道" in body[0]["service_notice"]
    case = load_case(app, body[0]["service_request_id"])
    assert (case.category, case.micro_grid_code, case.state, case.risk_level) == (
        "fire_hazard", MICRO_A1_1, "reported", "blue")
    assert case.description == "楼道堆放杂物"
    assert (case.lat, case.lon) == INSIDE_A1_1
    assert "micro_grid_from_location" in case.flags
    assert case.number and case.reporter_device_id == worker.device_id

    one = get(client, worker, f"requests/{case.id}.json")
    validate(one, "requests.json")
    assert one == [{
        "service_request_id": case.id, "status": "open", "status_notes": "已上报，待审核",
        "service_name": "消防隐患", "service_code": "fire_hazard", "description": "楼道堆放杂物",
        "agency_responsible": "安阳街道", "service_notice": None,
        "requested_datetime": one[0]["requested_datetime"], "updated_datetime": one[0]["updated_datetime"],
        "expected_datetime": one[0]["expected_datetime"], "address": "万松社区第1网格1号微网格",
        "address_id": MICRO_A1_1, "zipcode": None, "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "media_url": None}]
    requested = datetime.fromisoformat(one[0]["requested_datetime"])
    assert requested.utcoffset() == timedelta(hours=8)
    assert abs(requested - case.reported_at) < timedelta(seconds=1)
    assert abs(datetime.fromisoformat(one[0]["expected_datetime"]) - case.due_at) < timedelta(seconds=1)


def test_create_json_with_address_id_colour_and_media_url(app, client, worker, reviewer):
    body = post(client, worker, json_body={
        "service_code": "gas_safety", "address_id": MICRO_A1_2, "description": "燃气管道老化",
        "risk_level": "red", "media_url": "https://img.example.com/p/1.jpg"}).get_json()
    case = load_case(app, body[0]["service_request_id"])
    assert (case.category, case.micro_grid_code, case.risk_level, case.lat) == ("gas_safety", MICRO_A1_2, "red", None)
    page = client.get(f"/api/v1/cases/{case.id}", headers=reviewer.headers).get_json()
    assert any("https://img.example.com/p/1.jpg" in (e["data"].get("text") or "") for e in page["timeline"])
    one = get(client, reviewer, f"requests/{case.id}.json")
    validate(one, "requests.json")
    assert one[0]["lat"] is None and one[0]["address"] == "万松社区第1网格2号微网格"


def test_the_same_case_as_a_phone_report(app, client, worker):
    """An Open311 report and a sync report.create of the same matter give the same case fields."""
    via_open311 = load_case(app, post(client, worker, data={
        "service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "description": "同一件事",
        "risk_level": "yellow"}).get_json()[0]["service_request_id"])
    via_sync = load_case(app, worker.one(report_op(micro_grid=None, description="同一件事"))["case_id"])
    for name in ("category", "risk_level", "state", "level", "micro_grid_code", "grid_code", "township_code",
                 "lat", "lon", "reporter_id", "stage"):
        assert getattr(via_open311, name) == getattr(via_sync, name), name
    assert "possible_duplicate" in via_sync.flags  # and the sync saw the Open311 report as a neighbour


@pytest.mark.parametrize("data,field,code", [
    ({"service_code": "no_such_thing", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1]}, "service_code",
     "unknown_category"),
    ({"lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1]}, "service_code", "validation_failed"),
    ({"service_code": "fire_hazard"}, "lat", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": INSIDE_A1_1[0]}, "long", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": "north", "long": INSIDE_A1_1[1]}, "lat", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": 95, "long": INSIDE_A1_1[1]}, "lat", "validation_failed"),
    ({"service_code": "fire_hazard", "address_id": "nope"}, "address_id", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": 10.0, "long": 10.0}, "lat", "no_micro_grid"),
    ({"service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "status": "closed"}, "status",
     "validation_failed"),
    ({"service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "media_url": "file:///etc"},
     "media_url", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "description": "门口\x07有火"},
     "description", "validation_failed"),
    ({"service_code": "fire_hazard", "lat": INSIDE_A1_1[0], "long": INSIDE_A1_1[1], "description": "隐" * 2001},
     "description", "validation_failed"),
])
def test_bad_requests_are_problem_json(app, client, worker, data, field, code):
    response = post(client, worker, data=data, status=422)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == code and body["status"] == 422 and body["detail"]
    assert field in body["errors"], body
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        assert db.session.query(Case).count() == 0


def test_a_volunteer_may_not_report_what_their_role_may_not(client, auth):
    volunteer = Phone(client, auth, "zhiyuanzhe")
    body = post(client, volunteer, data={"service_code": "dispute", "lat": INSIDE_A1_1[0],
                                         "long": INSIDE_A1_1[1]}, status=403).get_json()
    assert body["code"] == "forbidden" and "service_code" in body["errors"]


def test_bad_json_body(client, worker):
    response = client.post(f"{BASE}/requests.json", data="[1, 2", content_type="application/json",
                           headers=worker.headers)
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_json"


# ---------------------------------------------------------------------------------------------- list


@pytest.fixture
def cases(app, client, worker, reviewer):
    """Four cases of grid A1 in known states and one reported 100 days ago."""
    ids = {}
    ids["open"] = worker.one(report_op(category="fire_hazard", description="待审核"))["case_id"]
    ids["accepted"] = worker.one(report_op(category="sanitation", risk="red", description="已受理的"))["case_id"]
    reviewer.one(transition_op(ids["accepted"], 1, "accept"))
    ids["rejected"] = worker.one(report_op(category="road_safety", description="不受理的"))["case_id"]
    reviewer.one(transition_op(ids["rejected"], 1, "reject", reason="不属于本平台受理范围"))
    ids["suspended"] = worker.one(report_op(category="gas_safety", description="挂起的"))["case_id"]
    reviewer.one(transition_op(ids["suspended"], 1, "accept"))
    reviewer.one(transition_op(ids["suspended"], 2, "suspend", reason="等待燃气公司"))
    ids["old"] = worker.one(report_op(category="fire_hazard", description="很久以前"))["case_id"]
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        db.session.execute(update(Case).where(Case.id == ids["old"])
                           .values(reported_at=datetime.now(timezone.utc) - timedelta(days=100)))
        db.session.commit()
    return ids


def ids_of(body) -> set[str]:
    return {r["service_request_id"] for r in body}


def test_list_and_status_notes(client, reviewer, cases):
    body = get(client, reviewer, "requests.json")
    validate(body, "requests.json")
    assert ids_of(body) == {cases["open"], cases["accepted"], cases["rejected"], cases["suspended"]}  # 90 days
    by_id = {r["service_request_id"]: r for r in body}
    assert (by_id[cases["accepted"]]["status"], by_id[cases["accepted"]]["status_notes"]) == ("open", "已受理")
    assert (by_id[cases["rejected"]]["status"], by_id[cases["rejected"]]["status_notes"]) == (
        "closed", "不予受理：不属于本平台受理范围")
    assert by_id[cases["suspended"]]["status_notes"] == "已受理（已挂起）：等待燃气公司"
    assert by_id[cases["rejected"]]["expected_datetime"] is None  # no running stage
    assert [r["requested_datetime"] for r in body] == sorted((r["requested_datetime"] for r in body), reverse=True)


def test_list_filters(client, reviewer, cases):
    def listed(query):
        body = get(client, reviewer, f"requests.json?{query}")
        validate(body, "requests.json")
        return ids_of(body)

    assert listed("status=closed") == {cases["rejected"]}
    assert listed("status=open") == {cases["open"], cases["accepted"], cases["suspended"]}
    assert listed("status=open,closed") == listed("")
    assert listed("service_code=fire_hazard") == {cases["open"]}
    assert listed("service_code=fire_hazard,sanitation") == {cases["open"], cases["accepted"]}
    # service_request_id overrides every other filter, the 90-day default included
    assert listed(f"service_request_id={cases['old']},{cases['rejected']}&status=open") == {
        cases["old"], cases["rejected"]}
    old_day = (datetime.now(timezone.utc) - timedelta(days=100)).date()
    assert listed(f"start_date={old_day - timedelta(days=1)}&end_date={old_day + timedelta(days=2)}") == {cases["old"]}
    assert listed(f"start_date={old_day - timedelta(days=1)}") == {cases["old"]}  # 90 days from the start
    assert listed(f"jurisdiction_id={MICRO_A1_1}") == listed("")
    assert listed(f"jurisdiction_id={MICRO_A1_2}") == set()
    assert get(client, reviewer, "requests.json?start_date=2026-01-01&end_date=2026-06-01",
               status=422)["errors"] == {"end_date": ["a search may span at most 90 days"]}
    assert get(client, reviewer, "requests.json?status=pending", status=422)["code"] == "validation_failed"
    assert get(client, reviewer, "requests.json?start_date=soon", status=422)["code"] == "validation_failed"


def test_updated_datetime_of_a_closed_request_is_its_close(app, client, reviewer, cases):
    from app.cases.models import Case
    from app.extensions import db

    closed_at = datetime(2026, 11, 20, 1, 2, 3, tzinfo=timezone.utc)
    with app.app_context():
        db.session.execute(update(Case).where(Case.id == cases["accepted"]).values(state="closed",
                                                                                     closed_at=closed_at))
        db.session.commit()
    one = get(client, reviewer, f"requests/{cases['accepted']}.json")
    validate(one, "requests.json")
    assert one[0]["status"] == "closed" and one[0]["updated_datetime"] == "2026-11-20T09:02:03+08:00"


# ---------------------------------------------------------------------------------------------- scope


def test_outsiders_see_no_requests_of_township_a(client, auth, cases):
    for username in ("reviewer_b", "worker_b", "volunteer_b"):
        outsider = Phone(client, auth, username)
        assert get(client, outsider, "requests.json") == []
        assert get(client, outsider, f"requests.json?service_request_id={','.join(cases.values())}") == []
        for case_id in cases.values():
            assert get(client, outsider, f"requests/{case_id}.json", status=404)["code"] == "not_found"
        assert get(client, outsider, f"requests.json?jurisdiction_id={TOWN_A}", status=404)["code"] == "not_found"
        body = post(client, outsider, data={"service_code": "fire_hazard", "lat": INSIDE_A1_1[0],
                                            "long": INSIDE_A1_1[1]}, status=403).get_json()
        assert body["code"] in ("out_of_scope", "forbidden")
        body = post(client, outsider, data={"service_code": "fire_hazard", "address_id": MICRO_A1_1},
                    status=403).get_json()
        assert body["code"] in ("out_of_scope", "forbidden")


def test_a_volunteer_sees_only_their_own(client, auth, cases):
    volunteer = Phone(client, auth, "zhiyuanzhe")
    assert get(client, volunteer, "requests.json") == []
    mine = post(client, volunteer, data={"service_code": "fire_hazard", "address_id": MICRO_A1_1}).get_json()
    body = get(client, volunteer, "requests.json")
    validate(body, "requests.json")
    assert ids_of(body) == {mine[0]["service_request_id"]}


def test_township_b_reports_its_own(app, client, auth):
    outsider = Phone(client, auth, "reviewer_b")
    body = post(client, outsider, data={"service_code": "sanitation", "address_id": MICRO_B1_1}).get_json()
    assert "玉海街道" in body[0]["service_notice"]
    assert load_case(app, body[0]["service_request_id"]).township_code == TOWN_B
    assert ids_of(get(client, outsider, "requests.json")) == {body[0]["service_request_id"]}
