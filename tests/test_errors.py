"""Every error leaves the server as problem JSON (RFC 9457) with a stable code, in the caller's language."""

from __future__ import annotations

import pytest
from flask import abort
from sqlalchemy import text

from app.errors import MESSAGES, PROBLEM_BASE

LOGIN = "/api/v1/auth/login"
GOOD_LOGIN = {"username": "wanggeyuan", "password": "Gridcase-grid-2026", "device_id": "phone-errors-1"}


@pytest.fixture
def app_config(request) -> dict:
    """Parametrise with ``indirect=["app_config"]`` to change the app's configuration."""
    return getattr(request, "param", {})


def assert_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"] == PROBLEM_BASE + code
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str) and body["title"]
    assert body["detail"] == MESSAGES[code][0] or body["detail"] == MESSAGES[code][1]
    assert "<html" not in r.get_data(as_text=True).lower()
    return body


def test_unknown_api_path(client):
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert body["detail"] == MESSAGES["not_found"][0]


def test_unknown_path_outside_the_api(client):
    assert_problem(client.get("/no-such-file.js"), 404, "not_found")


def test_wrong_method(client):
    r = client.get(LOGIN)
    assert_problem(r, 405, "method_not_allowed")
    assert "POST" in [m.strip() for m in r.headers["Allow"].split(",")]
    r = client.delete("/api/v1/me")
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


@pytest.mark.parametrize("app_config", [{"MAX_CONTENT_LENGTH": 256}], indirect=True)
def test_payload_too_large(client):
    r = client.post(LOGIN, json={**GOOD_LOGIN, "password": "x" * 1000})
    assert_problem(r, 413, "payload_too_large")
    # under the limit the same call goes through
    assert client.post(LOGIN, json=GOOD_LOGIN).status_code == 200


@pytest.mark.parametrize("body", ['{"username": "wanggeyuan",', "{'single': 'quotes'}", "\xff"])
def test_invalid_json_body(client, body):
    data = body.encode("latin-1") if body == "\xff" else body
    r = client.post(LOGIN, data=data, content_type="application/json")
    assert_problem(r, 400, "invalid_json")


@pytest.mark.parametrize("content_type,data", [
    ("application/x-www-form-urlencoded", "username=wanggeyuan&password=Gridcase-grid-2026&device_id=phone-0001"),
    ("text/plain", '{"username": "wanggeyuan"}'),
    ("multipart/form-data; boundary=x", "--x--\r\n"),
])
def test_non_json_content_type(client, content_type, data):
    r = client.post(LOGIN, data=data, content_type=content_type)
    assert r.status_code in (400, 415)
    body = assert_problem(r, r.status_code, "unsupported_media_type" if r.status_code == 415 else "bad_request")
    assert "errors" not in body  # not "every field is missing"


def test_validation_errors_map_fields(client):
    r = client.post(LOGIN, json={"username": "", "password": "x", "device_id": "no spaces allowed", "extra": 1})
    body = assert_problem(r, 422, "validation_failed")
    assert set(body["errors"]) == {"username", "device_id", "extra"}
    assert all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in body["errors"].values())


def test_missing_token(client):
    r = client.get("/api/v1/me")
    assert_problem(r, 401, "token_missing")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


_APP_KEY = object()


def _jwt(app, claims: dict, key=_APP_KEY, algorithm: str = "HS256") -> str:
    import jwt as pyjwt

    base = {"sub": "1", "sid": "nope", "type": "access", "fresh": False, "jti": "j1", "exp": 9999999999,
            "iat": 0, "nbf": 0}
    return pyjwt.encode({**base, **claims}, app.config["JWT_SECRET_KEY"] if key is _APP_KEY else key,
                        algorithm=algorithm)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("make,code", [
    (lambda app: "not-a-jwt", "token_invalid"),
    (lambda app: "a.b.c", "token_invalid"),
    (lambda app: _jwt(app, {}, key="another-key-0123456789abcdef0123456789"), "token_invalid"),
    (lambda app: _jwt(app, {}, algorithm="HS512"), "token_invalid"),
    (lambda app: _jwt(app, {}, key=None, algorithm="none"), "token_invalid"),
    (lambda app: _jwt(app, {"sub": 1}), "token_invalid"),  # PyJWT 2.10+: sub must be a string
    (lambda app: _jwt(app, {"nbf": 9999999990}), "token_invalid"),  # not valid yet
    (lambda app: _jwt(app, {"exp": 1}), "token_expired"),
    (lambda app: _jwt(app, {"type": "refresh"}), "token_wrong_type"),
    (lambda app: _jwt(app, {}), "token_revoked"),  # well signed, but no such session
])
def test_jwt_library_errors_are_problem_json(app, client, make, code):
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {make(app)}"})
    assert_problem(r, 401, code)


@pytest.mark.parametrize("app_config", [{"LOGIN_RATE_LIMIT": "2 per minute"}], indirect=True)
def test_rate_limit(client):
    for _ in range(2):
        assert client.post(LOGIN, json={**GOOD_LOGIN, "password": "wrong-password"}).status_code == 401
    r = client.post(LOGIN, json=GOOD_LOGIN)
    assert_problem(r, 429, "rate_limited")
    assert 0 < int(r.headers["Retry-After"]) <= 60


def test_internal_error_shows_nothing_inside(app, client, caplog):
    from app.extensions import db

    @app.get("/api/v1/test-boom")
    def boom():
        raise RuntimeError("secret internals: /srv/gridcase/app.py password=hunter2")

    @app.get("/api/v1/test-bad-sql")
    def bad_sql():
        db.session.execute(text("SELECT secret_column FROM no_such_table_xyz"))
        return "unreachable"

    for path in ("/api/v1/test-boom", "/api/v1/test-bad-sql"):
        r = client.get(path)
        body = assert_problem(r, 500, "internal_error")
        assert set(body) == {"type", "title", "status", "code", "detail"}
        raw = r.get_data(as_text=True)
        for leak in ("Traceback", "hunter2", "RuntimeError", "no_such_table_xyz", "SELECT", "secret"):
            assert leak not in raw
    # it was logged, with the traceback, for the operators
    assert any(rec.exc_info and "no_such_table_xyz" in str(rec.exc_info[1]) for rec in caplog.records)
    # the session was rolled back: the next request works (on PostgreSQL an aborted transaction would not)
    assert client.post(LOGIN, json=GOOD_LOGIN).status_code == 200


def test_a_database_that_is_away_for_a_moment_is_a_503(app, client, caplog):
    """Lost connections, restarts, deadlocks, SQLite busy: nothing was committed and sending again later
    can succeed, so the answer is 503 with Retry-After (the phone keeps its outbox), not a 500."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import OperationalError, ProgrammingError

    def busy():
        err = sqlite3.OperationalError("database is locked")
        err.sqlite_errorcode = 5  # SQLITE_BUSY, as the sqlite3 module sets it
        return OperationalError("UPDATE cases", {}, err)

    def no_table():
        err = sqlite3.OperationalError("no such table: xyz")
        err.sqlite_errorcode = 1  # SQLITE_ERROR
        return OperationalError("SELECT * FROM xyz", {}, err)

    raised = {
        "lost": lambda: OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection")),
        "restart": lambda: OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating")),
        "deadlock": lambda: OperationalError("UPDATE cases", {}, psycopg.errors.DeadlockDetected("deadlock")),
        "busy": busy,
        "bug-pg": lambda: ProgrammingError("SELECT x", {}, psycopg.errors.UndefinedColumn("no column x")),
        "bug-sqlite": no_table,
    }

    @app.get("/api/v1/test-db/<kind>")
    def db_error(kind):
        raise raised[kind]()

    for kind in ("lost", "restart", "deadlock", "busy"):
        r = client.get(f"/api/v1/test-db/{kind}")
        assert_problem(r, 503, "service_unavailable")
        assert r.headers["Retry-After"] == "5"
        assert "SELECT" not in r.get_data(as_text=True) and "UPDATE" not in r.get_data(as_text=True)
    for kind in ("bug-pg", "bug-sqlite"):
        assert_problem(client.get(f"/api/v1/test-db/{kind}"), 500, "internal_error")
    assert any(rec.levelname == "WARNING" and "database unavailable" in rec.getMessage() for rec in caplog.records)


def test_a_5xx_http_error_keeps_its_status(app, client):
    @app.get("/api/v1/test-unavailable")
    def unavailable():
        abort(503)

    assert_problem(client.get("/api/v1/test-unavailable"), 503, "service_unavailable")


@pytest.mark.parametrize("accept,lang", [
    (None, "zh"),
    ("en", "en"),
    ("en-US,en;q=0.9", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("en;q=0.5,zh-CN;q=0.9", "zh"),
    ("fr-FR", "zh"),
])
def test_detail_in_the_callers_language(client, accept, lang):
    headers = {"Accept-Language": accept} if accept else {}
    zh, en = MESSAGES["invalid_credentials"]
    r = client.post(LOGIN, json={**GOOD_LOGIN, "password": "wrong-password"}, headers=headers)
    assert r.get_json()["detail"] == (zh if lang == "zh" else en)
    zh, en = MESSAGES["token_missing"]
    assert client.get("/api/v1/me", headers=headers).get_json()["detail"] == (zh if lang == "zh" else en)
    zh, en = MESSAGES["not_found"]
    assert client.get("/api/v1/nope", headers=headers).get_json()["detail"] == (zh if lang == "zh" else en)


# ---------------------------------------------------------------------------------------------- head limits


def test_a_long_url_is_a_414(client):
    assert_problem(client.get("/api/v1/cases?q=" + "火" * 2000), 414, "url_too_long")  # 6,000 bytes escaped
    assert client.get("/api/v1/me?q=" + "x" * 3000).status_code == 401  # under the limit: on to the route


def test_too_many_or_too_large_headers_are_a_431(client):
    many = {f"X-Extra-{i}": "1" for i in range(70)}
    assert_problem(client.get("/api/v1/me", headers=many), 431, "headers_too_large")
    assert_problem(client.get("/api/v1/me", headers={"X-A": "a" * 9000, "X-B": "b" * 9000}), 431,
                   "headers_too_large")
    assert client.get("/api/v1/me", headers={"X-A": "a" * 9000}).status_code == 401


def _raw(port: int, request_head: str) -> tuple[int, str, bytes]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type:")), "")
    return int(lines[0].split()[1]), content_type, body


@pytest.mark.slow
def test_head_limits_through_gunicorn(database_url, tmp_path):
    """gunicorn's own limits are looser than ours: a long URL or big headers get our JSON, not its HTML."""
    import json

    from server import start_server

    with start_server(database_url, tmp_path, workers=1) as server:
        long_url = f"GET /api/v1/cases?q={'x' * 6000} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        big_headers = ("GET /api/v1/me HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       f"X-A: {'a' * 9000}\r\nX-B: {'b' * 9000}\r\n\r\n")
        one_big_header = ("GET /api/v1/me HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                          f"X-A: {'a' * 17000}\r\n\r\n")
        many_headers = ("GET /api/v1/me HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                        + "".join(f"X-Extra-{i}: 1\r\n" for i in range(70)) + "\r\n")
        for head, status, code in ((long_url, 414, "url_too_long"), (big_headers, 431, "headers_too_large"),
                                   (one_big_header, 431, "headers_too_large"),
                                   (many_headers, 431, "headers_too_large")):
            answered, content_type, body = _raw(server.port, head)
            assert (answered, content_type) == (status, "application/problem+json"), body[:200]
            assert json.loads(body)["code"] == code
