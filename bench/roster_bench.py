"""Roster benchmark: a county's 5,000-row roster (花名册), dry run and real import, through the API.

    .venv/bin/python bench/roster_bench.py [--db sqlite|postgresql|both] [--rows 5000]

Builds the demo city (as the tests do) in a temporary SQLite file or a throwaway PostgreSQL server
(tests/pgserver.py), spreads ``--rows`` grid workers and volunteers over its micro-grids (regions named by
path, as a county office writes them), then posts the CSV as the admin: the dry run, then the real import
(every account with an activation code). Target: each under 20 s. Not a test; the machine is printed first.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from machine import describe  # noqa: E402


def roster_csv(app, rows: int) -> bytes:
    from sqlalchemy import select

    from app.admin.people import name_paths
    from app.extensions import db
    from app.regions.models import Region

    with app.app_context():
        codes = list(db.session.scalars(select(Region.code).where(Region.level == "micro_grid")))
        paths = name_paths(codes)
    lines = ["username,display_name,phone,role,region"]
    for i in range(rows):
        role = "网格员" if i % 3 else "志愿者"
        lines.append(f"bench{i:05d},测试人员{i},139{i:08d},{role},{paths[codes[i % len(codes)]]}")
    return ("\n".join(lines) + "\n").encode()


def run(url: str, tmp: Path, rows: int) -> tuple[float, float]:
    from conftest import _build_template, _make_app

    _build_template(url, tmp)
    app = _make_app(url, tmp, {"LOGIN_RATE_LIMIT": "1000 per minute"})
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "admin", "password": "Gridcase-admin-2026",
                                                     "device_id": "bench-admin-0001"}).get_json()
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    data = roster_csv(app, rows)
    figures = []
    for dry_run in ("true", "false"):
        started = time.perf_counter()
        answer = client.post(f"/api/v1/admin/people/roster?dry_run={dry_run}", headers=headers,
                             data={"file": (io.BytesIO(data), "roster.csv")}, content_type="multipart/form-data")
        figures.append(time.perf_counter() - started)
        body = answer.get_json()
        assert answer.status_code == 200 and not body["problems"], body
    assert len(body["created"]) == rows
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.db in ("sqlite", "both"):
            dry, real = run(f"sqlite:///{tmp / 'roster.sqlite3'}", tmp, args.rows)
            print(f"sqlite      {args.rows} rows: dry run {dry:.2f} s, import {real:.2f} s")
        if args.db in ("postgresql", "both"):
            from pgserver import start_postgres

            with start_postgres(tmp / "pg") as server:
                url = server.create_database("roster_bench")
                dry, real = run(url, tmp, args.rows)
                print(f"postgresql  {args.rows} rows: dry run {dry:.2f} s, import {real:.2f} s")


if __name__ == "__main__":
    main()
