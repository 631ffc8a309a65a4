"""The calendar in the admin console: a CSV import with a dry run, and the coverage the banner shows."""

from __future__ import annotations

from datetime import date

from app.cases.models import CalendarDay
from app.extensions import db

URL = "/api/v1/admin/calendar/import"
CSV = "\ufeff# 2099\n2099-01-01,holiday,元旦\n2099-01-04,班,元旦调休上班\n\n2099-01-02,休,元旦\n"


def _days(client, auth):
    r = client.get("/api/v1/calendar?from=2099-01-01&to=2099-01-31", headers=auth.headers("admin"))
    return {d["date"]: (d["kind"], d["name"]) for d in r.get_json()["days"]}


def test_a_dry_run_counts_and_writes_nothing_then_the_import_writes(client, auth):
    r = client.post(URL, json={"csv": CSV}, headers=auth.headers("admin"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["dry_run"], body["days"], body["added"], body["first"], body["last"]) == (
        True, 3, 3, "2099-01-01", "2099-01-04")
    assert _days(client, auth) == {}
    r = client.post(f"{URL}?dry_run=false", json={"csv": CSV}, headers=auth.headers("admin"))
    assert r.status_code == 200 and r.get_json()["added"] == 3
    assert _days(client, auth)["2099-01-04"] == ("workday", "元旦调休上班")
    again = client.post(f"{URL}?dry_run=false", json={"csv": CSV}, headers=auth.headers("admin")).get_json()
    assert (again["added"], again["changed"], again["unchanged"]) == (0, 0, 3)
    events = client.get("/api/v1/admin/audit?action=calendar.import", headers=auth.headers("admin")).get_json()
    assert len(events) == 2 and events[-1]["changes"] == {"days": 3, "added": 3, "changed": 0}


def test_a_bad_csv_is_a_json_error_naming_the_lines(client, auth):
    r = client.post(f"{URL}?dry_run=false", json={"csv": "2099-01-01,holiday\n2099-13-01,holiday\nnonsense\n"},
                    headers=auth.headers("admin"))
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "calendar_import_failed"
    assert [p.split(":")[0] for p in body["errors"]["file"]] == ["line 2", "line 3"]
    assert _days(client, auth) == {}
    empty = client.post(URL, json={"csv": "# nothing\n"}, headers=auth.headers("admin"))
    assert empty.status_code == 422 and empty.get_json()["code"] == "calendar_import_failed"
    assert client.post(URL, json={"csv": CSV}, headers=auth.headers("reviewer")).status_code == 403


def test_the_coverage_is_short_until_next_years_days_are_imported(app_ctx, client, auth):
    url = "/api/v1/admin/calendar/coverage"
    next_year = date.today().year + 1
    db.session.execute(db.delete(CalendarDay).where(CalendarDay.day >= date(next_year, 1, 1)))
    db.session.commit()
    body = client.get(url, headers=auth.headers("admin")).get_json()
    short = (date(next_year, 1, 1) - date.today()).days <= 90
    assert body["ok"] is not short and body["missing_years"] == ([next_year] if short else [])
    r = client.post(f"{URL}?dry_run=false", json={"csv": f"{next_year}-01-01,holiday,元旦"},
                    headers=auth.headers("admin"))
    assert r.get_json()["coverage"]["ok"] is True
    assert client.get(url, headers=auth.headers("admin")).get_json()["covered_until"] == f"{next_year}-12-31"
    assert client.get(url, headers=auth.headers("wanggeyuan")).status_code == 403
