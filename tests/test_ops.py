"""Operations: health and readiness, request ids and JSON logs, metrics, security headers, rate limits."""

from __future__ import annotations

import json
import logging
import re

import pytest
from helpers import Phone, report_op


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.get_json()
    assert (body["status"], body["checks"]) == ("ready", {"database": "ok", "storage": "ok"})


def _calendar_for(app, years: set[int]) -> None:
    """The calendar holds an arrangement for exactly these years (one holiday each)."""
    from datetime import date

    from app.cases.models import CalendarDay
    from app.extensions import db

    with app.app_context():
        db.session.query(CalendarDay).delete()
        db.session.add_all(CalendarDay(day=date(y, 1, 1), workday=False, name="元旦") for y in years)
        db.session.commit()


def _needed_years() -> tuple[int, list[int]]:
    from datetime import datetime, timedelta

    from app.cases.clock import CHINA

    today = datetime.now(CHINA).date()
    return today.year, list(range(today.year, (today + timedelta(days=90)).year + 1))


def _gauge(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M)[1])


def test_readyz_and_metrics_say_when_the_calendar_does_not_cover_the_next_90_days(app, client):
    from datetime import date, datetime

    from app.cases.clock import CHINA

    this_year, needed = _needed_years()
    _calendar_for(app, set(needed) | {this_year - 1})
    body = client.get("/readyz").get_json()
    assert body["warnings"] == [] and body["calendar"]["missing_years"] == []
    last = date(max(needed), 12, 31)
    assert body["calendar"]["covered_until"] == last.isoformat()
    ahead = (last - datetime.now(CHINA).date()).days
    assert ahead >= 90 and abs(_gauge(client.get("/metrics").get_data(as_text=True),
                                      "gridcase_calendar_days_ahead") - ahead) <= 1

    _calendar_for(app, {this_year - 1, *needed[:-1]} if len(needed) > 1 else {this_year - 1})
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["status"] == "ready"  # a warning, not an outage
    warning = r.get_json()["warnings"]
    assert [w["code"] for w in warning] == ["calendar_not_covered"] and str(needed[-1]) in warning[0]["detail"]
    assert r.get_json()["calendar"]["missing_years"] == [needed[-1]]
    assert _gauge(client.get("/metrics").get_data(as_text=True), "gridcase_calendar_days_ahead") < 90


def test_readyz_says_not_ready_when_the_database_is_gone(app, tmp_path):
    from app import create_app

    broken = create_app({**app.config, "DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/db.sqlite3",
                         "SQLALCHEMY_ENGINE_OPTIONS": {}})
    r = broken.test_client().get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["checks"]["database"] == "unavailable" and "Traceback" not in r.get_data(as_text=True)


def test_request_id_is_kept_or_made(client):
    r = client.get("/healthz", headers={"X-Request-ID": "nginx-abc-123"})
    assert r.headers["X-Request-ID"] == "nginx-abc-123"
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    hostile = client.get("/healthz", headers={"X-Request-ID": "<script>x</script>" * 10}).headers["X-Request-ID"]
    assert "<" not in hostile and len(hostile) == 32


def test_json_log_lines_carry_the_request_id(app):
    from app.ops.logs import JsonFormatter

    with app.test_request_context("/api/v1/me"):
        from flask import g

        g.request_id = "req-42"
        record = logging.LogRecord("gridcase.test", logging.INFO, __file__, 1, "hello %s", ("网格",), None)
        record.status = 200
        line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello 网格" and line["request_id"] == "req-42" and line["path"] == "/api/v1/me"
    assert line["status"] == 200 and line["level"] == "INFO"


def test_metrics(client, auth):
    phone = Phone(client, auth, "wanggeyuan")
    phone.sync(report_op(), report_op(photos=["c" * 64]))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gridcase_sync_ops_total{status="applied"}' in text
    assert "gridcase_http_requests_total" in text and 'endpoint="sync.push"' in text
    assert "gridcase_http_request_seconds_bucket" in text
    # CPU per route: the sync's thread did work; a thread's CPU never exceeds its request's wall time.
    cpu = re.search(r'^gridcase_http_request_cpu_seconds_total\{endpoint="sync.push"\} (\S+)$', text, re.M)
    wall = re.search(r'^gridcase_http_request_seconds_sum\{endpoint="sync.push"\} (\S+)$', text, re.M)
    assert cpu and wall and 0 < float(cpu[1]) <= float(wall[1])
    for gauge in ("gridcase_held_ops 0", "gridcase_conflicts_open 0", "gridcase_devices_with_unsent",
                  "gridcase_calendar_days_ahead"):
        assert gauge in text
    assert "gridcase_photo_pipeline_seconds" in text


class TestMetricsToken:
    @pytest.fixture
    def app_config(self):
        return {"METRICS_TOKEN": "scrape-secret", "METRICS_ALLOW": ""}  # the token only, from anywhere

    def test_token_required(self, client):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 404 and refused.get_json()["code"] == "not_found"  # like no route
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


class TestMetricsAllowList:
    @pytest.fixture
    def app_config(self):
        return {"METRICS_ALLOW": "10.20.0.0/16, 2001:db8::/32"}

    @pytest.mark.parametrize("address,status", [("10.20.3.4", 200), ("2001:db8::7", 200), ("10.21.0.1", 404),
                                                ("127.0.0.1", 404), ("192.168.1.9", 404)])
    def test_only_the_listed_networks(self, client, address, status):
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": address}).status_code == status


def test_by_default_only_this_machine_may_scrape(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code == 404


def test_a_wrong_allow_list_stops_the_app_at_start(tmp_path):
    from app import ConfigError, create_app

    with pytest.raises(ConfigError, match="GRIDCASE_METRICS_ALLOW"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                    "METRICS_ALLOW": "10.0.0.0/33"})


def test_security_headers(client):
    r = client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in r.headers  # plain http
    secure = client.get("/healthz", base_url="https://gridcase.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    api = client.get("/api/v1/me")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in api.headers


class TestRateLimits:
    @pytest.fixture
    def app_config(self):
        return {"SYNC_RATE_LIMIT_DEVICE": "3 per minute", "UPLOAD_RATE_LIMIT_DEVICE": "2 per minute"}

    def test_sync_is_limited_per_device_not_per_user(self, client, auth):
        phone = Phone(client, auth, "wanggeyuan")
        for _ in range(3):
            phone.sync(report_op())
        r = client.post("/api/v1/sync", json={"device_id": phone.device_id, "ops": []}, headers=phone.headers)
        assert r.status_code == 429 and r.get_json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) > 0
        other_phone = Phone(client, auth, "wanggeyuan")  # the same user's other device is not held back
        assert other_phone.sync(report_op())["results"][0]["status"] == "applied"

    def test_uploads_are_limited_per_device(self, client, auth):
        phone = Phone(client, auth, "wanggeyuan")
        statuses = [client.put(f"/api/v1/media/{'d' * 64}", data=b"x", headers=phone.headers).status_code
                    for _ in range(3)]
        assert statuses[:2] == [422, 422] and statuses[2] == 429


def test_access_log_names_the_user_without_loading_it_again(app, client, auth, caplog):
    """The access line's user id comes from the ORM's identity key: after the view's commit the user is
    expired, and no SELECT is made for the log line."""
    import logging

    from sqlalchemy import event

    from app.extensions import db
    from app.users.models import User

    login = auth.login("wanggeyuan")
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.username == "wanggeyuan"))
        engine = db.engine
    selects = []

    def count(conn, cursor, statement, *args):
        if re.search(r"\b(FROM|JOIN) users\b", statement):
            selects.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with caplog.at_level(logging.INFO, logger="gridcase.access"):
            r = client.post("/api/v1/sync", json={"device_id": login["device_id"], "ops": []},
                            headers={"Authorization": f"Bearer {login['access_token']}"})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200
    lines = [rec for rec in caplog.records if rec.name == "gridcase.access"]
    assert lines and lines[-1].user_id == user_id
    assert 0 < lines[-1].cpu_ms <= lines[-1].duration_ms + 0.1
    # the token's look-up of its session joined to its user, and none for the log line (nor for the sync,
    # which keeps the user its read part loaded)
    assert len(selects) == 1 and "FROM auth_sessions" in selects[0], selects


@pytest.mark.slow
def test_metrics_access_through_gunicorn(database_url, tmp_path):
    """Through a real gunicorn (its own remote address, its workers' summed counters): this machine is not in
    the allow-list, so only the token opens /metrics; everyone else sees a route that does not exist."""
    import requests
    from server import start_server

    env = {"GRIDCASE_METRICS_TOKEN": "scrape-secret", "GRIDCASE_METRICS_ALLOW": "10.0.0.0/8"}
    with start_server(database_url, tmp_path, workers=2, extra_env=env) as server:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            refused = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
            assert refused.status_code == 404 and refused.json()["code"] == "not_found"
        scraped = requests.get(f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-secret"},
                               timeout=10)
        assert scraped.status_code == 200 and "gridcase_calendar_days_ahead" in scraped.text
