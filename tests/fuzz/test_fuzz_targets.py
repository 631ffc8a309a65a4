"""Hypothesis fuzz targets for the two parsers that read hostile bytes from the field.

(a) the photo pipeline on mutated real photos: ``process_photo`` returns a ProcessedPhoto or raises
    PhotoRejected, never anything else, never hangs (each case runs in a child process under a timeout);
(b) the sync envelope parser (``parse_envelope``, ``prepare`` for each op type) and the whole
    ``POST /api/v1/sync`` with generated JSON: never a 5xx, always problem JSON or one result per op.

Bounded for CI (``GRIDCASE_FUZZ_EXAMPLES``, default 40 per target). For a long run by hand:
``GRIDCASE_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/fuzz/test_fuzz_targets.py -p no:cacheprovider``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from photo_worker import PhotoWorker  # noqa: E402

EXAMPLES = int(os.environ.get("GRIDCASE_FUZZ_EXAMPLES", "40"))
PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
PHOTO_TIMEOUT_S = float(os.environ.get("GRIDCASE_FUZZ_PHOTO_TIMEOUT_S", "20"))
FINDINGS = Path(os.environ.get("GRIDCASE_FUZZ_FINDINGS", "/tmp/gridcase-fuzz-findings"))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("CI", "") != "",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


# ---------------------------------------------------------------------------------------------- (a) photos


def _seeds() -> dict[str, bytes]:
    """Small real files of each accepted format (the large phone photos make each example slow)."""
    seeds = {name: (PHOTOS / name).read_bytes()
             for name in ("Canon_40D.jpg", "image02206.jpg", "landscape_6.jpg", "samplefilehub.heif")}
    with Image.open(PHOTOS / "Canon_40D.jpg") as img:
        small = img.convert("RGB")
        for fmt, name, params in (("PNG", "canon.png", {}), ("PNG", "canon-rgba.png", {}),
                                  ("WEBP", "canon.webp", {"quality": 60})):
            buf = io.BytesIO()
            (small.convert("RGBA") if "rgba" in name else small).save(buf, fmt, **params)
            seeds[name] = buf.getvalue()
    return seeds


SEEDS = _seeds()
MAGIC = [b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
         b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x00\x18ftypmif1", b"\x00\x00\x00\x1cftypheix"]


@st.composite
def mutated_photo(draw) -> bytes:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "garbage", "overwrite", "duplicate", "header"]))
    n = len(data)
    if kind == "flip":  # a few bit flips, biased to the headers where the parsers' decisions are
        for _ in range(draw(st.integers(1, 16))):
            pos = draw(st.integers(0, min(n - 1, 4096)) | st.integers(0, n - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        data = data[:draw(st.integers(0, n - 1))]
    elif kind == "splice":  # one file's head on another file's body
        other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
        cut_a, cut_b = draw(st.integers(1, min(n, 8192))), draw(st.integers(0, len(other)))
        data = data[:cut_a] + other[cut_b:]
    elif kind == "garbage":  # a valid magic number, then noise
        data = bytearray(draw(st.sampled_from(MAGIC)) + draw(st.binary(min_size=0, max_size=4096)))
    elif kind == "overwrite":
        pos = draw(st.integers(0, n - 1))
        data[pos:pos + 8] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "duplicate":  # a region repeated (doubled markers, chunks, boxes)
        start = draw(st.integers(0, min(n - 1, 8192)))
        length = draw(st.integers(1, 2048))
        data[start:start] = data[start:start + length] * draw(st.integers(1, 4))
    else:  # header fields set to extreme values (sizes, dimensions, lengths)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, min(n - 4, 512)))
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                                      b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01",
                                                      b"\x00\x00\x00\x08", b"\xff\xff\x00\x00"]))
    return bytes(data)


@pytest.fixture(scope="module")
def photo_worker():
    worker = PhotoWorker(PHOTO_TIMEOUT_S)
    yield worker
    worker.close()


def _record(kind: str, data: bytes, outcome) -> Path:
    FINDINGS.mkdir(parents=True, exist_ok=True)
    import hashlib

    path = FINDINGS / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def test_seeds_are_accepted(photo_worker):
    """The fuzzer's starting points are sound photos (else the mutations prove little)."""
    for name, data in SEEDS.items():
        outcome = photo_worker.run(data)
        assert outcome.status == "ok", (name, outcome)


@FUZZ
@given(data=mutated_photo())
@example(data=b"\xff\xd8\xff")
@example(data=b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
@example(data=b"\x89PNG\r\n\x1a\n")
def test_pipeline_never_fails_otherwise(photo_worker, data):
    outcome = photo_worker.run(data)
    if outcome.status not in ("ok", "rejected"):
        saved = _record("photo", data, outcome)
        pytest.fail(f"process_photo {outcome.status} on {saved} ({len(data)} bytes): {outcome.detail}")


# ---------------------------------------------------------------------------------------------- (b) sync

# JSON the way a broken or hostile client sends it: every type, odd numbers, odd text, nesting.
_numbers = (st.integers() | st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
            | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, -1, 2 ** 31, 2 ** 63, 2 ** 64, 1e308]))
_texts = (st.text(max_size=40) | st.text(st.characters(codec="utf-8"), max_size=40)
          | st.sampled_from(["", "\x00", "\ud800", "NaN", "Infinity", "-0", "1e999", "0" * 40,
                             "00000000-0000-0000-0000-000000000000", "0" * 64, "report.create", "wgs84",
                             "2026-11-22T08:03:11+08:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-12:00",
                             "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01", "9999-12-31",
                             "2026-02-30T00:00:00", "红黄蓝" * 300, "a" * 5000]))
_scalars = st.none() | st.booleans() | _numbers | _texts
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(_texts, inner, max_size=5), max_leaves=25)


def _uuid() -> str:
    return str(uuid.uuid4())


def _valid_ops(case_id: str) -> list[dict]:
    from factories import MICRO_A1_1

    note = {"id": _uuid(), "text": "已到现场查看", "photos": ["0" * 64], "captured_at": "2026-11-22T09:00:00+08:00"}
    return [
        {"op_id": _uuid(), "seq": 1, "type": "report.create",
         "report": {"id": _uuid(), "category": "fire_hazard", "risk_level": "yellow", "description": "楼道堆放杂物",
                    "micro_grid_id": MICRO_A1_1, "captured_at": "2026-11-22T08:03:11+08:00", "photos": [],
                    "location": {"lat": 27.7437, "lon": 120.5843, "accuracy_m": 8, "crs": "gcj02"}}},
        {"op_id": _uuid(), "seq": 2, "type": "case.update", "case_id": case_id, "base_version": 1,
         "changes": {"risk_level": "red", "description": "更新", "location": {"lat": 27.7437, "lon": 120.5843}}},
        {"op_id": _uuid(), "seq": 3, "type": "case.note", "case_id": case_id, "note": note},
        {"op_id": _uuid(), "seq": 4, "type": "case.transition", "case_id": case_id, "base_version": 1,
         "action": "accept", "note": note, "reason": "ok"},
    ]


def _paths(value, prefix=()):
    """Every (path) inside a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _paths(inner, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    out = list(value)
    out[head] = _replace(out[head], rest, new)
    return out


@st.composite
def mutated_op(draw, case_id: str):
    """A valid op of each type with one spot (a field, a nested field, or the op itself) replaced, deleted
    or given an extra key: the ops that get furthest past validation."""
    op = draw(st.sampled_from(_valid_ops(case_id)))
    paths = list(_paths(op))
    path = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(["replace", "delete", "add"]))
    if how == "replace":
        return _replace(op, path, draw(json_values))
    target = op
    for key in path:
        target = target[key]
    if how == "delete" and path:
        parent = op
        for key in path[:-1]:
            parent = parent[key]
        parent = json.loads(json.dumps(parent))
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent.pop(path[-1])
        return _replace(op, path[:-1], parent)
    if isinstance(target, dict):
        return _replace(op, path, {**target, draw(_texts): draw(json_values)})
    return op


def _nested(depth: int, leaf="x") -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


@pytest.fixture
def app_config():
    # the fuzzers send far more requests than any phone: rate limits would answer most of them 429
    return {key: "1000000 per minute" for key in (
        "LOGIN_RATE_LIMIT", "LOGIN_IP_RATE_LIMIT", "SYNC_RATE_LIMIT_DEVICE", "SYNC_RATE_LIMIT_USER",
        "UPLOAD_RATE_LIMIT_DEVICE", "UPLOAD_RATE_LIMIT_USER")}


@pytest.fixture
def phone(client, auth):
    """A grid worker's phone with one case of its own to act on."""
    from helpers import Phone, report_op

    worker = Phone(client, auth, "wanggeyuan", device_id="fuzz-phone-0001")
    worker.case_id = worker.one(report_op())["case_id"]
    return worker


def _check_sync_response(response, n_ops: int | None):
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]
    body = response.get_json(silent=True)
    assert body is not None, response.get_data()[:500]
    if response.status_code == 200:
        assert response.mimetype == "application/json"
        assert isinstance(body.get("results"), list)
        if n_ops is not None:
            assert len(body["results"]) == n_ops
        for result in body["results"]:
            assert result["status"] in ("applied", "duplicate", "conflict", "rejected", "held", "retry"), result
            # "retry" is what a server-side failure looks like per op: none may come from bad input
            assert result["status"] != "retry", result
    else:
        assert response.mimetype == "application/problem+json", response.mimetype
        assert {"type", "title", "status", "code", "detail"} <= set(body), body
        assert body["status"] == response.status_code


@FUZZ
@given(op=st.data())
def test_prepare_never_raises(app_ctx, op):
    """``prepare`` answers every op (refused with field errors, or validated), whatever it is."""
    from app.sync.services import Prepared, prepare

    raw = op.draw(json_values | mutated_op(_uuid()))
    item = prepare(raw, {})
    assert isinstance(item, Prepared)
    if item.answer is not None:
        assert item.answer["status"] == "rejected"
        json.dumps(item.answer)  # the answer must go out as JSON
    else:
        assert item.op["type"] in ("report.create", "case.update", "case.note", "case.transition")


@FUZZ
@given(doc=st.data())
@example(doc=None)
def test_parse_envelope_raises_only_domain_errors(app_ctx, doc):
    from app.errors import DomainError
    from app.sync.services import parse_envelope

    if doc is None:
        raws = [b"", b"\xff\xfe", _nested(100_000).encode(), b'{"device_id": "x", "ops": ' + _nested(5000).encode() + b"}",
                b"NaN", b"[]", b'{"ops": 1e99999}', b'{"device_id": "fuzz-phone-0001", "ops": [], "client_time": "\\ud800"}']
    else:
        envelope = doc.draw(json_values | st.fixed_dictionaries(
            {"device_id": st.just("fuzz-phone-0001") | _texts, "ops": st.lists(json_values, max_size=3) | json_values},
            optional={"client_time": _texts | json_values, "outbox": json_values}))
        raws = [json.dumps(envelope, allow_nan=True).encode(),
                json.dumps(envelope, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")]
    for raw in raws:
        try:
            out = parse_envelope(raw, "fuzz-phone-0001")
        except DomainError as exc:
            assert exc.status in (400, 413, 422), exc
        else:
            assert isinstance(out["ops"], list)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_sync_endpoint_never_5xx(client, phone, data):
    headers = {**phone.headers, "Content-Type": "application/json"}
    if data is None:  # fixed hostile bodies
        bodies = [b"", b"{", b"null", b"[]", b"\xff\xfe\x00", _nested(100_000).encode(),
                  b'{"device_id": "fuzz-phone-0001", "ops": [' + _nested(900).encode() + b"]}",
                  b'{"device_id": "fuzz-phone-0001", "ops": [{"op_id": "' + b"a" * 36 + b'", "type": "case.note", '
                  b'"case_id": "' + _nested(1).encode() + b'"}]}',
                  b'{"device_id": "fuzz-phone-0001", "ops": [{"type": "report.create", "report": {"location": '
                  b'{"lat": 1e999, "lon": NaN}, "category": "fire_hazard"}}]}',
                  b'{"device_id": "fuzz-phone-0001", "client_time": "\\ud800", "ops": []}',
                  b'{"device_id": "fuzz-phone-0001", "ops": [{"op_id": "\\ud800", "type": "report.create"}]}']
        # 36 characters, the length of a UUID, that are no UUID: they must not reach a query as ids
        for bad in ("\x00" * 36, "\ud800" * 36, "\u00e9" * 36):
            for key in ("op_id", "case_id"):
                op = {"op_id": _uuid(), "type": "case.note", "case_id": phone.case_id,
                      "note": {"id": _uuid(), "text": "ok"}, key: bad}
                good = {"op_id": _uuid(), "type": "case.note", "case_id": phone.case_id,
                        "note": {"id": _uuid(), "text": "ok"}}
                bodies.append(json.dumps({"device_id": "fuzz-phone-0001", "ops": [op, good]}).encode())
        for body in bodies:
            response = client.post("/api/v1/sync", data=body, headers=headers)
            try:
                n = len(json.loads(body)["ops"])
            except Exception:
                n = None
            _check_sync_response(response, n)
            if response.status_code == 200 and n == 2:  # the good op behind a bad one is applied
                assert response.get_json()["results"][1]["status"] == "applied", response.get_json()
        return
    ops = data.draw(st.lists(mutated_op(phone.case_id) | json_values, min_size=0, max_size=6))
    envelope = {"device_id": phone.device_id, "ops": ops}
    # mostly a sound envelope, so that the ops get judged; sometimes garbage around them too
    envelope["client_time"] = data.draw(st.sampled_from(["now", "2026-11-25T08:00:00+00:00", None, "garbage"]))
    if envelope["client_time"] == "now":
        envelope["client_time"] = datetime.now(timezone.utc).isoformat()
    elif envelope["client_time"] == "garbage":
        envelope["client_time"] = data.draw(_texts | json_values)
    if data.draw(st.integers(0, 4)) == 0:
        envelope["outbox"] = data.draw(st.fixed_dictionaries({}, optional={"pending": _numbers | json_values,
                                                                         "oldest": _texts | json_values}))
    ascii_only = data.draw(st.booleans())
    body = json.dumps(envelope, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    response = client.post("/api/v1/sync", data=body, headers=headers)
    _check_sync_response(response, len(ops))
    event(f"HTTP {response.status_code}")
    for result in (response.get_json().get("results") or []) if response.status_code == 200 else []:
        event(f"op {result['status']} {result.get('code', '')}")
    if response.status_code == 200:  # and a replay of the same batch answers the same ops again
        again = client.post("/api/v1/sync", data=body, headers=headers)
        _check_sync_response(again, len(ops))


# ---------------------------------------------------------------------------------------------- NUL and lone surrogates

# Found by the fuzzers: text PostgreSQL cannot store (NUL) or no driver can encode (an unpaired surrogate,
# valid JSON as "\ud800") reached queries on every route (a 500). Now 404 in a path, 422 elsewhere.
_UNSTORABLE_CALLS = [
    ("GET", "/api/v1/regions/%00", None, 404), ("GET", "/api/v1/cases/%00", None, 404),
    ("GET", "/api/v1/cases?q=%00", None, 422), ("GET", "/api/v1/conflicts?case_id=%00", None, 422),
    ("GET", "/open311/v2/requests.json?service_code=%00", None, 422), ("GET", "/api/v1/stats?region=%00", None, 422),
    ("POST", "/api/v1/devices/%00/revoke", None, 404),
    ("POST", "/api/v1/auth/login", '{"username": "\\u0000", "password": "x", "device_id": "abcdefgh1"}', 422),
    ("POST", "/api/v1/auth/login", '{"username": "\\ud800", "password": "x", "device_id": "abcdefgh1"}', 422),
    ("POST", "/open311/v2/requests.json", '{"service_code": "\\u0000", "lat": 27.7437, "long": 120.5843}', 422),
    ("POST", "/open311/v2/requests.json", '{"service_code": "fire_hazard", "lat": 27.7437, "long": 120.5843, '
                                          '"description": "\\udc00"}', 422),
]


@pytest.mark.parametrize("method,url,body,status", _UNSTORABLE_CALLS)
def test_unstorable_text_is_refused(client, phone, method, url, body, status):
    headers = {**phone.headers, "Content-Type": "application/json"}
    response = client.open(url, method=method, data=body, headers=headers)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert client.open(url, method=method, data=body, headers={"Content-Type": "application/json"}).status_code \
        == (422 if url.endswith("/login") else 401)  # without a token: still a 401 first
