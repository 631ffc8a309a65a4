"""Schemathesis against the live OpenAPI document (``/api/openapi.json``), through the WSGI app.

Every operation in the spec is called with generated data, positive and negative, as a logged-in reviewer
of township A on a database holding the demo city, and every response is checked against the spec:
no 5xx, documented status codes, content types, headers and bodies, invalid data refused, valid data
accepted. All of schemathesis's checks run (``case.validate_response`` with none excluded but the narrow,
commented exceptions in ``test_api``). Bounded (``GRIDCASE_FUZZ_API_EXAMPLES``, default 15 per operation) so
the whole run stays well under two minutes per engine; ``CI=true`` makes it deterministic.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
)

from app.errors import NUL_MESSAGE

MAX_EXAMPLES = int(os.environ.get("GRIDCASE_FUZZ_API_EXAMPLES", "15"))


@pytest.fixture
def app_config():
    # the fuzzers send far more requests than any phone: rate limits would answer most of them 429
    return {key: "1000000 per minute" for key in (
        "LOGIN_RATE_LIMIT", "LOGIN_IP_RATE_LIMIT", "SYNC_RATE_LIMIT_DEVICE", "SYNC_RATE_LIMIT_USER",
        "UPLOAD_RATE_LIMIT_DEVICE", "UPLOAD_RATE_LIMIT_USER")}


def _spec_app():
    """An app only to read the spec from at collection time (the spec needs no database); the calls go to
    the suite's ``app`` fixture. ``schemathesis.pytest.from_fixture`` would load it from the fixture itself,
    but its lazy loader writes ``Item._nodeid``, which pytest 9.2 no longer has."""
    import tempfile

    from app import create_app

    tmp = tempfile.mkdtemp(prefix="gridcase-spec-")
    return create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/spec.sqlite3", "MEDIA_DIR": tmp})


# tus chunks are plain bytes under tus's own media type
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", _spec_app())


@pytest.fixture
def tokens(auth) -> dict:
    return auth.login("reviewer")


# Paths that are also instances of another documented template: werkzeug routes ``/cases/transitions`` to
# ``GET /cases/{case_id}`` too (and ``/media/missing`` to ``GET|PUT /media/{sha256}``), so an OPTIONS answer
# rightly lists those methods in ``Allow``; the spec itself has both templates.
OVERLAPPING_PATHS = {"/api/v1/cases/transitions", "/api/v1/media/missing", "/api/v1/admin/categories/order"}

# Rules OpenAPI cannot state, by operation: which error fields (or "code:…") a 422 may name for data that is
# valid by the schema alone. Anything else refused on schema-valid data still fails the run.
SEMANTIC_REFUSALS = {
    # an opaque cursor handed out by the previous page: no schema says which strings are one
    ("GET", "/api/v1/cases"): {"cursor"},
    # `to` after `from` (not before it, for the calendar's dates), and a period of at most three years / 90 days
    ("GET", "/api/v1/cases/export"): {"to", "query.to"},
    ("GET", "/api/v1/stats"): {"to", "query.to"},
    ("GET", "/api/v1/points"): {"to", "query.to"},
    ("GET", "/api/v1/calendar"): {"to", "query.to"},
    ("GET", "/open311/v2/requests.json"): {"end_date", "query.end_date"},
    # a note needs text or photos; the device named must be the token's own
    ("POST", "/api/v1/cases/{case_id}/transitions"): {"note.text"},
    ("POST", "/api/v1/sync"): {"device_id"},
    # each case once in a bulk transition (by id, case-insensitive: not uniqueItems)
    ("POST", "/api/v1/cases/transitions"): {"cases"},
    # the bytes must be a photo, and the one the hash names
    ("POST", "/api/v1/media"): {"code:photo_empty", "code:photo_unsupported_format", "code:photo_corrupt"},
    ("PUT", "/api/v1/media/{sha256}"): {"code:photo_empty", "code:photo_unsupported_format", "code:photo_corrupt",
                                        "code:hash_mismatch"},
    # people: the region must exist and be the caller's to manage, the role one they may give, the username free;
    # a roster must be a CSV or XLSX file with the columns, and no bad rows to be imported
    ("POST", "/api/v1/admin/people"): {"region", "role", "username", "phone", "display_name",
                                       "code:username_taken", "code:person_not_manageable", "code:unknown_region"},
    ("POST", "/api/v1/admin/people/{user_id}/move"): {"region", "code:person_not_manageable", "code:unknown_region"},
    ("POST", "/api/v1/admin/people/roster"): {"code:roster_bad_file", "code:roster_no_header", "code:roster_has_errors",
                                              "code:roster_too_many_rows", "code:roster_too_large", "file"},
    # tus: metadata must be base64 pairs (sha256: a hex digest), the size within the limit and the day's quota;
    # a chunk must start at the upload's offset and fit in what is left
    ("POST", "/api/v1/uploads/"): {"code:tus_bad_metadata", "code:payload_too_large", "code:upload_quota"},
    ("PATCH", "/api/v1/uploads/{upload_id}"): {"code:tus_bad_checksum_algorithm", "code:tus_chunk_too_long"},
    # lat and long come together, or an address_id instead; the service code and the micro-grid must exist
    ("POST", "/open311/v2/requests.json"): {"lat", "long", "address_id", "service_code", "code:unknown_category",
                                            "code:no_micro_grid"},
}


# tus refuses with statuses of its own protocol, which schemathesis does not count as refusals: 412 for a
# missing or wrong Tus-Resumable version (checked before the token: a request wrong in both gets the 412),
# 460 for a chunk whose checksum does not match.
TUS_REFUSALS = {412, 460}


def _tus_refusal(case, response) -> bool:
    return case.path.startswith("/api/v1/uploads/") and response.status_code in TUS_REFUSALS


def _semantic_refusal(case, response) -> bool:
    if response.status_code not in (400, 413, 422):  # 400 and 413: tus's refusals, by their codes below
        return False
    allowed = SEMANTIC_REFUSALS.get((case.method.upper(), case.path), set())
    try:
        body = response.json()
    except ValueError:
        return False
    errors = body.get("errors") or {}
    # API-wide: no text may hold NUL (PostgreSQL cannot store it), a rule no per-field pattern states
    if errors and all(messages == [NUL_MESSAGE] for messages in errors.values()):
        return True
    if f"code:{body.get('code')}" in allowed:
        return True
    return bool(errors) and set(errors) <= allowed


def _undeclared_query(case) -> bool:
    """Whether the request carries query parameters the operation does not declare: those are ignored, as
    HTTP APIs do (OpenAPI has no way to forbid them), so such a "negative" case is answered like a valid one."""
    declared = {p.name for p in case.operation.query}
    return bool(set(case.query or {}) - declared)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=os.environ.get("CI", "") != "",
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
def test_api(case, app, tokens):
    token = tokens["refresh_token"] if case.path == "/api/v1/auth/refresh" else tokens["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    if case.media_type == "application/x-www-form-urlencoded" and isinstance(case.body, dict):
        # A form has no null: schemathesis would send a nullable field as the text "null"; absent is the
        # form's way to say it.
        case.body = {key: value for key, value in case.body.items() if value is not None}
    response = case.call(app=app, headers=headers)
    excluded = []
    if _semantic_refusal(case, response):
        excluded.append(positive_data_acceptance)
    if _undeclared_query(case) or _tus_refusal(case, response):
        excluded.append(negative_data_rejection)
    if _tus_refusal(case, response):
        excluded.append(missing_required_header)
    if case.path in OVERLAPPING_PATHS:
        excluded.append(allow_header_conformance)
    case.validate_response(response, headers=headers, excluded_checks=excluded,
                           transport_kwargs={"app": app, "headers": headers})
