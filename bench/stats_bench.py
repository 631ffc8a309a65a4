"""Figures benchmark: GET /api/v1/stats and the points leaderboard on a county-sized case table.

    .venv/bin/python bench/stats_bench.py [--db sqlite|postgresql] [--cases 1000000] [--iterations 20]

Seeds the same synthetic county as bench/review_bench.py (25 townships, 2,500 grids, 10,000 micro-grids,
``--cases`` cases over the last 365 days, 70 % closed), then completes what the figures read, in SQL:
``hours_to_close`` of the closed cases, an ended ``accept`` and ``close`` stage per case that has them (with
their on-time / overdue outcome), one volunteer per grid and a points entry for each accepted case.

Measures, through the Flask test client with a bearer token (auth, argument parsing, queries and JSON):
the figures of the city, of township 001 and of one grid, over the last 30 and the last 365 days; and the
points leaderboard of the city and of the township. Each ``--iterations`` times: p50, p95, max.

The seed is a bulk load: it goes in without the roll-up's triggers (app/stats/rollup.py), which are then
installed and the roll-up rebuilt from the cases and stages (``flask stats rebuild``'s work; timed and
printed), as an operator would after such a load.

Targets (issue 5): a township's year p95 < 300 ms, the city's year p95 < 1 s; the other views are printed.
Not a test: numbers depend on the machine, which is printed first (with the load average: the CPU time per
request is printed beside the wall time, for a shared machine).
"""

from __future__ import annotations

import argparse
import os
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
# p95 targets (issue 5), the same on both engines.
TARGET_P95_MS = {"city, 365 days": 1000.0, "township, 365 days": 300.0}


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


def rebuild_rollup(app) -> dict:
    """Install the roll-up's triggers and rebuild it from the seeded cases and stages (then ANALYZE)."""
    from sqlalchemy import text

    from app.extensions import db
    from app.stats import rollup

    with app.app_context():
        t0, c0 = time.perf_counter(), time.process_time()
        with db.engine.begin() as conn:
            rollup.install(conn)
            counts = rollup.rebuild(conn)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"seconds": seconds, "cpu": cpu, "rows": counts}


def without_triggers(app) -> None:
    """Create the schema, then drop the roll-up's triggers: the seed is a bulk load."""
    from app.extensions import db
    from app.stats import rollup

    with app.app_context():
        db.create_all()
        with db.engine.begin() as conn:
            rollup.uninstall(conn)


def measure(client, headers, url: str, iterations: int) -> dict:
    times, cpu = [], []
    for _ in range(iterations):
        t, c = time.perf_counter(), time.process_time()
        r = client.get(url, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert r.status_code == 200, r.get_json()
    times.sort()
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
            "max": times[-1], "cpu_p50": statistics.median(cpu), "body": r.get_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    review_bench.TOTAL_CASES = args.cases
    review_bench.REBUILD_ROLLUP = False
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
            without_triggers(app)
            s = seed(app, args.cases)
            c = complete(app)
            print(f"seeded ({args.db}): {s['cases']:,} cases in {s['cases_s']:.1f} s; {c['stages']:,} ended stages and "
                  f"{c['entries']:,} points entries in {c['seconds']:.1f} s")
            r = rebuild_rollup(app)
            print(f"roll-up rebuilt in {r['seconds']:.1f} s ({r['cpu']:.1f} s CPU in this process): "
                  + ", ".join(f"{name} {n:,} rows" for name, n in r["rows"].items()))
            client = app.test_client()
            headers = {"reviewer": login(client, "bench_reviewer"), "admin": login(client, "bench_admin")}
            runs = [  # (name, who, path)
                ("city, 30 days", "admin", "/api/v1/stats"),
                ("city, 365 days", "admin", "/api/v1/stats?from=2000-01-01"),
                ("township, 30 days", "reviewer", "/api/v1/stats"),
                ("township, 365 days", "reviewer", "/api/v1/stats?from=2000-01-01"),
                ("township, odd period", "reviewer", "/api/v1/stats?from=2026-03-07T05:17:00Z&to=2026-09-30T22:41:00Z"),
                ("village, 365 days", "reviewer", f"/api/v1/stats?region={TOWN}001&from=2000-01-01"),
                ("grid, 365 days", "reviewer", f"/api/v1/stats?region={GRID}&from=2000-01-01"),
                ("leaderboard, city, 365 days", "admin", "/api/v1/points?from=2000-01-01"),
                ("leaderboard, township, 30 days", "reviewer", "/api/v1/points"),
            ]
            missed = []
            for name, who, path in runs:
                m = measure(client, headers[who], path, args.iterations)
                target = TARGET_P95_MS.get(name)
                if target is not None and m["p95"] >= target:
                    missed.append(name)
                body = m["body"]
                seen = (f"{body['total']:,} cases, close-out {body['close_out_rate']}, on time {body['on_time_rate']}, "
                        f"median {body['median_hours_to_close']} h" if isinstance(body, dict)
                        else f"{len(body)} volunteers, top {body[0]['points'] if body else None}")
                print(f"{name:32s} p50 {m['p50']:7.1f} ms  p95 {m['p95']:7.1f} ms  max {m['max']:7.1f} ms  "
                      f"CPU p50 {m['cpu_p50']:7.1f} ms"
                      + (f"  [target {target:.0f} ms]" if target else "") + f"  ({seen})")
            print("targets: " + ("all met" if not missed else "MISSED for " + ", ".join(missed))
                  + f" (load average {os.getloadavg()[0]:.2f})")
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
