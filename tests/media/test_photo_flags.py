"""What photos say about their case: taken far away or long ago (exif_mismatch), or the same photo, or a
near-identical copy, on another case (photo_reused)."""

from __future__ import annotations

import hashlib
import io

import pytest
from helpers import Phone, note_op, report_op, transition_op
from PIL import Image

from app.cases.models import Case, CasePhoto
from app.extensions import db


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


def put(client, phone, data):
    r = client.put(f"/api/v1/media/{sha(data)}", data=data, headers={**phone.headers,
                                                                     "Content-Type": "application/octet-stream"})
    assert r.status_code in (200, 201), r.get_json()
    return r


def flags(app, case_id):
    with app.app_context():
        case = db.session.get(Case, case_id)
        links = db.session.query(CasePhoto).filter_by(case_id=case_id).all()
        return set(case.flags or []), {link.sha256: set(link.flags or []) for link in links}


def test_exif_far_from_the_report_is_flagged_when_the_photo_arrives(app, client, worker, photos):
    italy = (photos / "DSCN0010.jpg").read_bytes()  # GPS near 43.46 N 11.88 E, taken in 2008
    cid = worker.one(report_op(photos=[sha(italy)]))["case_id"]
    assert "exif_mismatch" not in flags(app, cid)[0]  # nothing known before the bytes arrive
    put(client, worker, italy)
    case_flags, link_flags = flags(app, cid)
    assert "exif_mismatch" in case_flags and "exif_mismatch" in link_flags[sha(italy)]


def test_photo_without_exif_is_not_flagged(app, client, worker):
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 120, 60)).save(buf, "JPEG")
    data = buf.getvalue()
    cid = worker.one(report_op(photos=[sha(data)]))["case_id"]
    put(client, worker, data)
    assert flags(app, cid)[0] == set()


def test_same_bytes_on_another_case(app, client, worker, photos):
    data = (photos / "Canon_40D.jpg").read_bytes()
    first = worker.one(report_op(photos=[sha(data)]))["case_id"]
    second = worker.one(report_op(category="sanitation", photos=[sha(data)]))["case_id"]
    # naming a hash twice proves nothing; the photo counts on both cases once the phone sends it
    assert "photo_reused" not in flags(app, second)[0]
    put(client, worker, data)
    assert "photo_reused" in flags(app, second)[0]
    assert "photo_reused" not in flags(app, first)[0]
    # a photo already sent, named by a third report: the sync result says so at once
    third = worker.one(report_op(category="gas_safety", photos=[sha(data)]))
    assert "photo_reused" in third["flags"] and third["missing_photos"] == []
    assert "photo_reused" in flags(app, third["case_id"])[0]


def test_near_identical_copy_on_another_case(app, client, worker, photos):
    original = (photos / "DSCN0012.jpg").read_bytes()
    img = Image.open(io.BytesIO(original))
    buf = io.BytesIO()
    img.resize((img.width * 9 // 10, img.height * 9 // 10)).save(buf, "JPEG", quality=70)
    copy = buf.getvalue()
    assert sha(copy) != sha(original)
    first = worker.one(report_op(photos=[sha(original)]))["case_id"]
    put(client, worker, original)
    second = worker.one(report_op(category="sanitation", photos=[sha(copy)]))["case_id"]
    put(client, worker, copy)
    assert "photo_reused" in flags(app, second)[0]
    # an unrelated photo on a third case is not a reuse
    other = (photos / "landscape_3.jpg").read_bytes()
    third = worker.one(report_op(category="gas_safety", photos=[sha(other)]))["case_id"]
    put(client, worker, other)
    assert "photo_reused" not in flags(app, third)[0]
    assert first != second


def test_rectification_photo_from_a_resolve_note(app, client, auth, worker, photos):
    reviewer = Phone(client, auth, "reviewer")
    data = (photos / "DSCN0040.jpg").read_bytes()
    cid = worker.one(report_op())["case_id"]
    reviewer.one(transition_op(cid, 1, "accept"))
    r = worker.one(note_op(cid, photos=[{"sha256": sha(data), "role": "rectification"}]))
    assert r["missing_photos"] == [sha(data)]
    put(client, worker, data)
    page = client.get(f"/api/v1/cases/{cid}", headers=reviewer.headers).get_json()
    assert [p["sha256"] for p in page["photos_by_role"]["rectification"]] == [sha(data)]
    assert page["missing_photos"] == []
