"""A hash is a name, not a key: naming a photo's hash in an op never lets anyone see it who could not before.

A photo attaches to a case when the user who linked it has shown they hold its bytes (they uploaded them,
or could see the photo already); otherwise it stays in that case's ``missing_photos`` until that user
uploads the same bytes, whose hash is checked even when the server stores the object already. The attack
walked here: an outsider of another township learns a photo's hash (it is in case JSON, pulls and
Open311's ``media_url``) and names it in a report of their own.
"""

from __future__ import annotations

import hashlib

import pytest
import requests
from factories import MICRO_B1_1, TEST_USERS
from helpers import Phone, note_op, report_op, transition_op
from server import ApiClient, start_server

MISMATCH = "hash_mismatch"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def evidence(client, auth, photos):
    """A photo of township A, sent by the grid worker who reported it."""
    data = (photos / "DSCN0021.jpg").read_bytes()
    worker = Phone(client, auth, "wanggeyuan")
    case_id = worker.one(report_op(photos=[sha(data)]))["case_id"]
    put = client.put(f"/api/v1/media/{sha(data)}", data=data, headers=worker.headers)
    assert put.status_code == 201, put.get_json()
    return {"data": data, "sha": sha(data), "case": case_id, "worker": worker}


def _get(client, phone, digest, variant="thumb"):
    return client.get(f"/api/v1/media/{digest}?variant={variant}", headers=phone.headers)


def test_naming_a_hash_does_not_attach_the_photo(client, auth, evidence):
    outsider = Phone(client, auth, "worker_b")
    assert _get(client, outsider, evidence["sha"]).status_code == 404
    r = outsider.one(report_op(micro_grid=MICRO_B1_1, location=None, photos=[evidence["sha"]]))
    assert r["status"] == "applied" and r["missing_photos"] == [evidence["sha"]]
    assert "photo_reused" not in r["flags"]
    assert _get(client, outsider, evidence["sha"]).status_code == 404  # still nothing to see
    page = client.get(f"/api/v1/cases/{r['case_id']}", headers=outsider.headers).get_json()
    assert page["missing_photos"] == [evidence["sha"]]
    assert [p["missing"] for p in page["photos_by_role"]["evidence"]] == [True]
    # and A's case is not marked as sharing its photo with B's
    a_page = client.get(f"/api/v1/cases/{evidence['case']}", headers=evidence["worker"].headers).get_json()
    assert "photo_reused" not in a_page["flags"] and a_page["missing_photos"] == []


@pytest.mark.parametrize("body", [b"", b"\xff\xd8\xff not that photo"], ids=["empty", "other bytes"])
def test_a_stored_hash_with_the_wrong_body_is_refused(client, auth, evidence, body):
    outsider = Phone(client, auth, "worker_b")
    case_id = outsider.one(report_op(micro_grid=MICRO_B1_1, location=None, photos=[evidence["sha"]]))["case_id"]
    r = client.put(f"/api/v1/media/{evidence['sha']}", data=body, headers=outsider.headers)
    assert r.status_code == 422 and r.get_json()["code"] == MISMATCH
    assert _get(client, outsider, evidence["sha"]).status_code == 404
    page = client.get(f"/api/v1/cases/{case_id}", headers=outsider.headers).get_json()
    assert page["missing_photos"] == [evidence["sha"]]


def test_missing_answers_for_the_caller(client, auth, evidence):
    outsider = Phone(client, auth, "worker_b")
    unknown = sha(b"never sent by anyone")
    def ask(phone):
        return client.post("/api/v1/media/missing", json={"hashes": [evidence["sha"], unknown]},
                           headers=phone.headers).get_json()["missing"]
    # to the outsider, A's photo looks exactly like one nobody has sent
    assert ask(outsider) == [evidence["sha"], unknown]
    assert ask(evidence["worker"]) == [unknown]
    # a reviewer of A sees the photo through A's case: nothing to send
    assert ask(Phone(client, auth, "reviewer")) == [unknown]


def test_holding_the_bytes_attaches_and_flags_the_reuse(app, client, auth, evidence):
    outsider = Phone(client, auth, "worker_b")
    r = outsider.one(report_op(micro_grid=MICRO_B1_1, location=None, photos=[evidence["sha"]]))
    put = client.put(f"/api/v1/media/{evidence['sha']}", data=evidence["data"], headers=outsider.headers)
    assert put.status_code == 200 and put.get_json()["stored"] is True
    assert _get(client, outsider, evidence["sha"]).status_code == 200
    page = client.get(f"/api/v1/cases/{r['case_id']}", headers=outsider.headers).get_json()
    assert page["missing_photos"] == [] and "photo_reused" in page["flags"]
    # what the outsider holds now is only the photo: A's case stays out of reach
    assert client.get(f"/api/v1/cases/{evidence['case']}", headers=outsider.headers).status_code == 404
    # a second report naming it, now that the phone has shown it holds the bytes: the sync result says so
    again = outsider.one(report_op(micro_grid=MICRO_B1_1, location=None, category="sanitation",
                                   photos=[evidence["sha"]]))
    assert again["missing_photos"] == [] and "photo_reused" in again["flags"]


def test_seeing_the_photo_is_holding_it(client, auth, evidence):
    """A reviewer of A can see A's photo already: naming it on another case of A attaches it at once."""
    reviewer = Phone(client, auth, "reviewer")
    other = evidence["worker"].one(report_op(category="sanitation"))["case_id"]
    reviewer.one(transition_op(other, 1, "accept"))
    r = reviewer.one(note_op(other, photos=[{"sha256": evidence["sha"]}]))
    assert r["status"] == "applied" and r["missing_photos"] == [] and "photo_reused" in r["flags"]


def test_a_volunteer_sees_only_what_they_sent_or_reported(client, auth, evidence, photos):
    volunteer = Phone(client, auth, "zhiyuanzhe")  # same grid as A's case, but not its reporter
    assert _get(client, volunteer, evidence["sha"]).status_code == 404
    own = (photos / "image02206.jpg").read_bytes()
    assert client.put(f"/api/v1/media/{sha(own)}", data=own, headers=volunteer.headers).status_code == 201
    assert _get(client, volunteer, sha(own)).status_code == 200  # sent it, not linked yet: theirs to see


# ---------------------------------------------------------------------------------------------- real server


@pytest.mark.slow
def test_the_attack_through_gunicorn(database_url, tmp_path, photos):
    """The same walk over HTTP, through gunicorn with two workers: the outsider names A's hash, tries
    empty and wrong bodies, asks what is missing, and never gets the photo; then holds the real bytes."""
    server = start_server(database_url, tmp_path, workers=2,
                          extra_env={"GRIDCASE_LOGIN_RATE_LIMIT": "1000 per minute"})
    try:
        data = (photos / "Canon_40D.jpg").read_bytes()
        digest = sha(data)
        owner = ApiClient(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "pop-owner")
        outsider = ApiClient(server.url, "worker_b", TEST_USERS["worker_b"][2], "pop-outsider")
        assert owner.sync([report_op(photos=[digest])])["results"][0]["missing_photos"] == [digest]
        assert requests.put(f"{server.url}/api/v1/media/{digest}", data=data, timeout=15,
                            headers={"Authorization": f"Bearer {owner.access_token}"}).status_code == 201

        def call(method, path, **kwargs):
            return requests.request(method, server.url + path, timeout=15,
                                    headers={"Authorization": f"Bearer {outsider.access_token}"}, **kwargs)

        result = outsider.sync([report_op(micro_grid=MICRO_B1_1, location=None, photos=[digest])])["results"][0]
        assert result["status"] == "applied" and result["missing_photos"] == [digest]
        for body in (b"", data[:-1], b"x" * len(data)):
            r = call("PUT", f"/api/v1/media/{digest}", data=body)
            assert r.status_code == 422 and r.json()["code"] == MISMATCH, r.text
        assert call("POST", "/api/v1/media/missing", json={"hashes": [digest]}).json() == {"missing": [digest]}
        for variant in ("thumb", "display", "original"):
            assert call("GET", f"/api/v1/media/{digest}?variant={variant}").status_code == 404
        case = call("GET", f"/api/v1/cases/{result['case_id']}").json()
        assert case["missing_photos"] == [digest]

        assert call("PUT", f"/api/v1/media/{digest}", data=data).status_code == 200
        assert call("POST", "/api/v1/media/missing", json={"hashes": [digest]}).json() == {"missing": []}
        shown = call("GET", f"/api/v1/media/{digest}?variant=display")
        assert shown.status_code == 200 and shown.headers["Content-Type"] == "image/jpeg"
        assert "photo_reused" in call("GET", f"/api/v1/cases/{result['case_id']}").json()["flags"]
    finally:
        server.stop()
