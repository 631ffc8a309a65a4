"""GET /api/v1/calendar: the State Council's days off and make-up workdays, loaded at first run."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.cases.clock import CHINA


def test_national_day_2026_as_the_notice_has_it(client, auth):
    r = client.get("/api/v1/calendar?from=2026-09-18&to=2026-10-11", headers=auth.headers("wanggeyuan"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    days = {d["date"]: (d["kind"], d["name"]) for d in body["days"]}
    assert days["2026-09-20"] == ("workday", "国庆节调休上班")  # Sunday
    assert days["2026-10-10"] == ("workday", "国庆节调休上班")  # Saturday
    assert {d for d, (kind, _) in days.items() if kind == "workday"} == {"2026-09-20", "2026-10-10"}
    assert [days[f"2026-09-{d}"] for d in (25, 26, 27)] == [("holiday", "中秋节")] * 3
    assert [days[f"2026-10-0{d}"] for d in range(1, 8)] == [("holiday", "国庆节")] * 7
    assert set(days) == {"2026-09-20", "2026-09-25", "2026-09-26", "2026-09-27", "2026-10-10",
                         *(f"2026-10-0{d}" for d in range(1, 8))}
    assert body["from"] == "2026-09-18" and body["to"] == "2026-10-11"
    assert body["covered"] is True and body["missing_years"] == []
    assert body["office_hours"]["default"] == ["08:30-12:00", "14:00-17:30"]
    assert next(d for d in body["days"] if d["date"] == "2026-09-20")["weekday"] == 7


def test_spring_festival_2025(client, auth):
    body = client.get("/api/v1/calendar?from=2025-01-20&to=2025-02-10", headers=auth.headers("zhiyuanzhe")).get_json()
    days = {d["date"]: d["kind"] for d in body["days"]}
    assert days["2025-01-26"] == days["2025-02-08"] == "workday"
    assert all(days[f"2025-{md}"] == "holiday" for md in ("01-28", "01-31", "02-03", "02-04"))


def test_default_period_is_today_and_the_next_90_days(client, auth):
    body = client.get("/api/v1/calendar", headers=auth.headers("reviewer")).get_json()
    today = datetime.now(CHINA).date()
    assert body["from"] == today.isoformat() and body["to"] == (today + timedelta(days=90)).isoformat()


def test_an_unknown_year_is_said(client, auth):
    body = client.get("/api/v1/calendar?from=2031-01-01&to=2031-12-31", headers=auth.headers("admin")).get_json()
    assert body["days"] == [] and body["covered"] is False and body["missing_years"] == [2031]


def test_needs_a_login(client):
    r = client.get("/api/v1/calendar?from=2026-01-01&to=2026-01-31")
    assert r.status_code == 401 and r.get_json()["code"] == "token_missing"


@pytest.mark.parametrize("query, field", [
    ("from=2026-13-01&to=2026-12-31", "from"),
    ("from=yesterday", "from"),
    ("from=2026-10-10&to=2026-10-01", "to"),
    ("from=2020-01-01&to=2026-12-31", "to"),  # longer than three years
    ("from=0001-01-01&to=0001-01-02", "from"),
    ("to=9999-12-31", "to"),
    ("from=2026-01-01T08:00:00", "from"),
])
def test_bad_dates_are_problem_json(client, auth, query, field):
    r = client.get(f"/api/v1/calendar?{query}", headers=auth.headers("wanggeyuan"))
    assert r.status_code == 422, r.get_data(as_text=True)
    body = r.get_json()
    assert body["code"] == "validation_failed" and r.mimetype == "application/problem+json"
    assert any(key.endswith(field) for key in body["errors"]), body
