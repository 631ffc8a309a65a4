"""Figures benchmark: GET /api/v1/stats and the points leaderboard on a county-sized case table.

    .venv/bin/python bench/stats_bench.py [--db sqlite|postgresql] [--cases 1000000] [--iterations 20]

Seeds the same synthetic county as bench/review_bench.py (25 townships, 2,500 grids, 10,000 micro-grids,
``--cases`` cases over the last 365 days, 70 % closed), then completes what the figures read, in SQL:
``hours_to_close`` of the closed cases, an ended ``accept`` and ``close`` stage per case that has them (with
their on-time / overdue outcome), one volunteer per grid and a points entry for each accepted case.

Measures, through the Flask test client with a bearer token (auth, argument parsing, queries and JSON):
the figures of the city, of township 001 and of one grid, over the last 30 and the last 365 days; and the
points leaderboard of the city and of the township. Each ``--iterations`` times: p50, p95, max.

Not a test: numbers depend on the machine, which is printed first. On a shared 2-core box (2026-11-25):
200,000 cases on SQLite meet the target (city 30 days p95 425 ms, township 365 days 198 ms, grid 17 ms, city
leaderboard 294 ms; the city's whole year 2.3 s). 1,000,000 cases on SQLite miss it (city 30 days 2.6 s,
township 30 days 1.3 s) because no index serves "closed in the period": ``closed_at`` is not indexed, so
those queries scan every closed case of the region; an index on (state, closed_at) is the fix.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import review_bench
from review_bench import CITY, login, machine, seed

TOWN = f"{CITY}001"
GRID = f"{CITY}00100101"
# A dashboard refresh: the default views (last 30 days) and a township's year. The city's whole year reads
# every case and every stage; it is printed, not held to the target.
TARGET_P95_MS = {"sqlite": 1000.0, "postgresql": 1000.0}


def complete(app) -> dict:
    """Hours to close, ended stages with outcomes, volunteers and their points: all INSERT/UPDATE … SELECT."""
    from sqlalchemy import text

    from app.extensions import db

    t0 = time.perf_counter()
    with app.app_context():
        engine = db.engine
        pg = engine.dialect.name == "postgresql"
        hours = ("EXTRACT(EPOCH FROM (closed_at - reported_at)) / 3600.0" if pg
                 else "(julianday(closed_at) - julianday(reported_at)) * 24.0")
        accept_h = ("EXTRACT(EPOCH FROM (accepted_at - reported_at)) / 3600.0" if pg
                    else "(julianday(accepted_at) - julianday(reported_at)) * 24.0")
        limit_close = "CASE risk_level WHEN 'red' THEN 1440 WHEN 'yellow' THEN 4320 ELSE 10080 END"
        limit_accept = "CASE risk_level WHEN 'red' THEN 120 WHEN 'yellow' THEN 480 ELSE 1440 END"
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE cases SET hours_to_close = ROUND(CAST({hours} AS NUMERIC), 2) "
                              "WHERE state = 'closed'"))
            conn.execute(text(
                "INSERT INTO case_stages (case_id, stage, started_at, limit_minutes, consumed_s, ended_at, outcome) "
                f"SELECT id, 'accept', reported_at, {limit_accept}, 0, accepted_at, "
                f"CASE WHEN {accept_h} * 60 > {limit_accept} THEN 'overdue' ELSE 'on_time' END "
                "FROM cases WHERE accepted_at IS NOT NULL"))
            conn.execute(text(
                "INSERT INTO case_stages (case_id, stage, started_at, limit_minutes, consumed_s, ended_at, outcome) "
                f"SELECT id, 'close', accepted_at, {limit_close}, 0, closed_at, "
                f"CASE WHEN hours_to_close * 60 > {limit_close} THEN 'overdue' ELSE 'on_time' END "
                "FROM cases WHERE state = 'closed' AND accepted_at IS NOT NULL"))
            stored_hash = conn.execute(text("SELECT password_hash FROM users WHERE username = 'bench_admin'")).scalar()
            conn.execute(text(
                "INSERT INTO users (username, display_name, password_hash, role, region_code, created_at) "
                "SELECT 'v' || code, name || '志愿者', :h, 'volunteer', code, updated_at FROM regions "
                "WHERE level = 'grid'"), {"h": stored_hash})
            conn.execute(text(
                "INSERT INTO points_ledger (user_id, case_id, points, reason, at) "
                "SELECT u.id, c.id, CASE c.risk_level WHEN 'red' THEN 10 WHEN 'yellow' THEN 5 ELSE 2 END, "
                "'accepted', c.accepted_at FROM cases c JOIN users u ON u.username = 'v' || c.grid_code "
                "WHERE c.accepted_at IS NOT NULL"))
            conn.execute(text("ANALYZE"))
            stages = conn.execute(text("SELECT COUNT(*) FROM case_stages WHERE ended_at IS NOT NULL")).scalar()
            entries = conn.execute(text("SELECT COUNT(*) FROM points_ledger")).scalar()
    return {"seconds": time.perf_counter() - t0, "stages": stages, "entries": entries}


def measure(client, headers, url: str, iterations: int) -> dict:
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        r = client.get(url, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.get_json()
    times.sort()
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
            "max": times[-1], "body": r.get_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    review_bench.TOTAL_CASES = args.cases
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))

    from app import create_app
    from app.extensions import db

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.db == "postgresql":
            from pgserver import start_postgres

            server = start_postgres(Path(tmp) / "pg")
            url = server.create_database("stats_bench")
        else:
            url = f"sqlite:///{tmp}/stats.sqlite3"
        try:
            app = create_app({"TESTING": True, "DATABASE_URL": url, "MEDIA_DIR": tmp, "ARGON2_TIME_COST": 1,
                              "ARGON2_MEMORY_KIB": 1024, "LOGIN_RATE_LIMIT": "1000 per minute",
                              "LOGIN_IP_RATE_LIMIT": "1000 per minute"})
            s = seed(app, args.cases)
            c = complete(app)
            print(f"seeded ({args.db}): {s['cases']:,} cases in {s['cases_s']:.1f} s; {c['stages']:,} ended stages and "
                  f"{c['entries']:,} points entries in {c['seconds']:.1f} s")
            client = app.test_client()
            headers = {"reviewer": login(client, "bench_reviewer"), "admin": login(client, "bench_admin")}
            runs = [  # (name, who, path, held to the target)
                ("city, 30 days", "admin", "/api/v1/stats", True),
                ("city, 365 days", "admin", "/api/v1/stats?from=2000-01-01", False),
                ("township, 30 days", "reviewer", "/api/v1/stats", True),
                ("township, 365 days", "reviewer", "/api/v1/stats?from=2000-01-01", True),
                ("grid, 365 days", "reviewer", f"/api/v1/stats?region={GRID}&from=2000-01-01", True),
                ("leaderboard, city, 365 days", "admin", "/api/v1/points?from=2000-01-01", True),
                ("leaderboard, township, 30 days", "reviewer", "/api/v1/points", True),
            ]
            worst = 0.0
            for name, who, path, targeted in runs:
                m = measure(client, headers[who], path, args.iterations)
                if targeted:
                    worst = max(worst, m["p95"])
                body = m["body"]
                seen = (f"{body['total']:,} cases, close-out {body['close_out_rate']}, on time {body['on_time_rate']}, "
                        f"median {body['median_hours_to_close']} h" if isinstance(body, dict)
                        else f"{len(body)} volunteers, top {body[0]['points'] if body else None}")
                print(f"{name:32s} p50 {m['p50']:7.1f} ms  p95 {m['p95']:7.1f} ms  max {m['max']:7.1f} ms  ({seen})")
            target = TARGET_P95_MS[args.db]
            print(f"worst p95 of the targeted views {worst:.0f} ms: {'meets' if worst < target else 'MISSES'} the "
                  f"{target:.0f} ms target")
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
