"""Sync throughput on a real gunicorn, set up as in production.

    .venv/bin/python bench/sync_bench.py                    # SQLite file, gunicorn with 2 sync workers
    .venv/bin/python bench/sync_bench.py --db postgresql    # a throwaway PostgreSQL (tests/pgserver.py)
    .venv/bin/python bench/sync_bench.py --profile          # cProfile of the same work in-process (test client)

The database is made the way an operator makes it (``flask db upgrade`` and ``flask demo seed`` with
GRIDCASE_DATABASE_URL set); passwords keep the production Argon2 cost. Four client threads (one
requests.Session and one device each, all the grid worker "wanggeyuan") send batches of 50 ``report.create``
ops: Chinese descriptions, GPS sampled inside the micro-grids of grid 33038100100101 (from the API's GeoJSON),
1-3 photo hashes each. Then the same batches again (every op ``duplicate``), then batches of ``case.update``
at stale base versions (three-way merges: applied fields and conflicts).

Targets on a 2-core machine: >= 2,000 ops/s on SQLite, >= 1,500 ops/s on PostgreSQL, p99 batch latency
< 250 ms, replay >= 10,000 ops/s, case.update with merges >= 1,000 ops/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

GRID = "33038100100101"
USER, PASSWORD = "wanggeyuan", "Gridcase-grid-2026"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789abcdef"
JWT_SECRET_KEY = "bench-jwt-secret-key-0123456789abcdef0123456789abcdef"
TARGETS = {"sqlite": 2000.0, "postgresql": 1500.0}
P99_TARGET_MS = 250.0
REPLAY_TARGET = 10_000.0
UPDATE_TARGET = 1000.0

CATEGORIES = ["fire_hazard", "ebike_charging", "gas_safety", "public_order", "road_safety", "sanitation",
              "illegal_building", "flood_typhoon", "dispute", "work_safety", "vulnerable_people", "other"]
PLACES = ["万松社区3幢2单元", "安阳街道农贸市场东门", "瑞祥大道与万松路交叉口", "沿江小区地下车库", "实验小学后门",
          "老街12号出租房", "万松菜场二楼", "新华村文化礼堂旁", "玉海路公交站台", "城东工业区5号厂房"]
PROBLEMS = ["楼道堆放纸箱和旧家具，堵塞消防通道", "电动车停在楼道内充电，电线私拉乱接", "液化气瓶与灶具间距不足，软管老化",
            "夜间有人聚集喝酒喧哗，邻居多次投诉", "路面塌陷约半米见方，夜间无警示标志", "垃圾桶满溢，周边有积水和异味",
            "屋顶违规加盖彩钢棚，约二十平方米", "排水沟堵塞，暴雨时积水严重", "两户邻居因漏水问题发生争执",
            "车间灭火器过期，安全出口被货物占用", "独居老人近两天未见出门，电话无人接听", "广告牌松动，大风天气有坠落风险"]
DETAILS = ["已拍照留存，请尽快处理。", "已口头提醒住户，需要物业配合。", "现场已设置临时警示。",
           "建议联系社区民警一同处置。", "住户表示会在三天内整改。", "需要相关部门上门核查。", ""]
RISKS = ["red", "yellow", "blue"]


# ---------------------------------------------------------------------------------------------- machine


# ---------------------------------------------------------------------------------------------- database


from machine import cpu_by_group, cpu_spent, machine  # noqa: E402  (bench/machine.py)


def make_database(url: str, workdir: Path) -> None:
    """``flask db upgrade`` + ``flask demo seed``, as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")}
    env.update({"GRIDCASE_DATABASE_URL": url, "GRIDCASE_SECRET_KEY": SECRET_KEY,
                "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY, "GRIDCASE_MEDIA_DIR": str(workdir / "media")})
    for args in (["db", "upgrade"], ["demo", "seed", "--no-cases"]):
        proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=str(ROOT), env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"flask {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


class Database:
    """A fresh database on the chosen engine (a SQLite file, or a database on a throwaway PostgreSQL)."""

    def __init__(self, kind: str, workdir: Path, sql: list[str] | tuple = ()):
        self.kind, self.workdir, self.pg = kind, workdir, None
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir / 'gridcase.sqlite3'}"
        else:
            from pgserver import start_postgres

            # As in production (docs/deploy.md): autovacuum at its defaults, random_page_cost = 1.1 for SSDs.
            # With the default cost of 4 the planner read this bench's small tables whole rather than probe
            # an index 50 times (a batch's missing photos: a scan of case_photos, ~1 ms a batch), which a
            # production-sized table never does. Autovacuum ran every second here for a while, so that the
            # new tables had statistics: a table analyzed while empty had been planned as empty. Since the
            # roll-up migration no longer analyzes empty tables, unanalyzed tables are planned from their
            # size, and the same tree gives the same figures either way, but for the cost of vacuuming and
            # analyzing the bench's fast-growing small tables every second, which a production database's
            # big tables do not pay per op (RESULTS, "Sync"). GRIDCASE_PG_EXTRA_CONF="autovacuum_naptime = 1"
            # brings it back.
            extra = os.environ.get("GRIDCASE_PG_EXTRA_CONF", "")
            if "random_page_cost" not in extra:
                os.environ["GRIDCASE_PG_EXTRA_CONF"] = "; ".join(filter(None, ["random_page_cost = 1.1", extra]))
            self.pg = start_postgres(workdir / "pg")
            self.url = self.pg.create_database("gridcase_bench")
        make_database(self.url, workdir)
        if sql:  # an experiment (--sql): e.g. "DROP INDEX ix_cases_state"
            import sqlalchemy as sa

            engine = sa.create_engine(self.url)
            with engine.begin() as c:
                for statement in sql:
                    c.exec_driver_sql(statement)
            engine.dispose()

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


class PgStatements:
    """pg_stat_statements of the bench's server (``--pg-statements``): where PostgreSQL's time goes."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with self.engine.connect() as c:
            c.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.reset()

    def reset(self) -> None:
        with self.engine.connect() as c:
            c.exec_driver_sql("SELECT pg_stat_statements_reset()")

    def show(self, phase: str, ops: int, top: int) -> None:
        import sqlalchemy as sa

        with self.engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT total_exec_time, calls, rows, query FROM pg_stat_statements "
                "WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT :top"),
                {"top": top}).all()
            total = c.exec_driver_sql("SELECT sum(total_exec_time) FROM pg_stat_statements").scalar() or 0
        print(f"\n  PostgreSQL, {phase}: statements took {total * 1000 / max(ops, 1):,.0f} µs per op in all")
        for ms, calls, n, query in rows:
            print(f"    {ms * 1000 / max(ops, 1):7,.0f} µs/op  {calls:6} calls {n:7} rows  {' '.join(query.split())[:150]}")


# ---------------------------------------------------------------------------------------------- ops


def micro_grids(polygons_geojson: dict):
    from shapely.geometry import shape

    return [(f["properties"]["code"], shape(f["geometry"])) for f in polygons_geojson["features"]
            if f["properties"]["level"] == "micro_grid"]


def point_in(rng: random.Random, polygon) -> tuple[float, float]:
    from shapely.geometry import Point

    minx, miny, maxx, maxy = polygon.bounds
    while True:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if polygon.contains(Point(lon, lat)):
            return lat, lon


def report_op(rng: random.Random, grids, seq: int) -> dict:
    code, polygon = rng.choice(grids)
    lat, lon = point_in(rng, polygon)
    captured = datetime.now(timezone(timedelta(hours=8))) - timedelta(minutes=rng.randint(1, 600))
    description = f"{rng.choice(PLACES)}：{rng.choice(PROBLEMS)}。{rng.choice(DETAILS)}"
    photos = [hashlib.sha256(uuid.uuid4().bytes).hexdigest() for _ in range(rng.randint(1, 3))]
    return {"op_id": str(uuid.uuid4()), "seq": seq, "type": "report.create", "report": {
        "id": str(uuid.uuid4()), "category": rng.choice(CATEGORIES), "risk_level": rng.choice(RISKS),
        "description": description, "micro_grid_id": code,
        "location": {"lat": round(lat, 7), "lon": round(lon, 7), "accuracy_m": rng.choice([5, 8, 12, 20]),
                     "crs": "wgs84"},
        "captured_at": captured.isoformat(timespec="seconds"), "photos": photos}}


# ---------------------------------------------------------------------------------------------- phases


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


class Phone:
    def __init__(self, base_url: str, device_id: str):
        import requests

        self.base_url, self.device_id = base_url, device_id
        self.http = requests.Session()
        r = self.http.post(base_url + "/api/v1/auth/login",
                           json={"username": USER, "password": PASSWORD, "device_id": device_id}, timeout=60)
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def sync(self, ops: list[dict]) -> list[dict]:
        r = self.http.post(self.base_url + "/api/v1/sync", timeout=60, json={
            "device_id": self.device_id, "client_time": datetime.now(timezone.utc).isoformat(), "ops": ops})
        if r.status_code != 200:
            raise RuntimeError(f"sync: HTTP {r.status_code} {r.text[:300]}")
        return r.json()["results"]


def run_phase(name: str, phones: list[Phone], batches: list[list], known: dict | None = None) -> dict:
    """Each phone sends its batches in order, all phones at once; ops/s over the wall time."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    results: list[list[dict]] = [[] for _ in phones]
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(phones) + 1)

    def work(i: int) -> None:
        barrier.wait()
        for batch in batches[i]:
            if callable(batch):  # built when sent, from the versions seen so far
                batch = batch()
            t0 = time.perf_counter()
            try:
                out = phones[i].sync(batch)
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(repr(exc))
                return
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                for r in out:
                    statuses[r["status"]] = statuses.get(r["status"], 0) + 1
                    if r["status"] == "rejected" and len(errors) < 5:
                        errors.append(f"rejected: {r}")
                    if known is not None and r.get("case_id") and r.get("case_version"):
                        known[r["case_id"]] = max(known.get(r["case_id"], 0), r["case_version"])
            results[i].extend(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(phones))]
    for t in threads:
        t.start()
    cpu0 = cpu_by_group()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = cpu_spent(cpu0, cpu_by_group())
    n = sum(len(r) for r in results)
    out = {"phase": name, "ops": n, "wall_s": wall, "ops_per_s": n / wall, "statuses": statuses,
           "p50_ms": percentile(latencies, 50) * 1000, "p95_ms": percentile(latencies, 95) * 1000,
           "p99_ms": percentile(latencies, 99) * 1000, "max_ms": max(latencies, default=0) * 1000,
           "errors": errors, "results": results, "cpu": cpu}
    return out


def show(phase: dict, target: float | None = None, p99_target: float | None = None) -> None:
    verdict = []
    if target is not None:
        verdict.append(f"target >= {target:,.0f} ops/s: {'OK' if phase['ops_per_s'] >= target else 'MISSED'}")
    if p99_target is not None:
        verdict.append(f"p99 < {p99_target:.0f} ms: {'OK' if phase['p99_ms'] < p99_target else 'MISSED'}")
    print(f"  {phase['phase']:<22} {phase['ops']:>6} ops in {phase['wall_s']:6.2f} s = {phase['ops_per_s']:8,.0f} ops/s"
          f"   batch p50 {phase['p50_ms']:6.1f} ms  p95 {phase['p95_ms']:6.1f} ms  p99 {phase['p99_ms']:6.1f} ms"
          f"  max {phase['max_ms']:6.1f} ms")
    print(f"  {'':<22} statuses {phase['statuses']}" + (f"   {'; '.join(verdict)}" if verdict else ""))
    per_op = ", ".join(f"{k} {v / max(phase['ops'], 1) * 1e6:,.0f}" for k, v in phase["cpu"].items() if v)
    print(f"  {'':<22} CPU s {phase['cpu']}; per op (µs): {per_op}")
    if phase["errors"]:
        print(f"  {'':<22} ERRORS: {phase['errors'][:3]}")


def build_batches(rng: random.Random, grids, clients: int, per_client: int, size: int) -> list[list[list[dict]]]:
    seq = 0
    out = []
    for _ in range(clients):
        mine = []
        for _ in range(per_client):
            batch = []
            for _ in range(size):
                seq += 1
                batch.append(report_op(rng, grids, seq))
            mine.append(batch)
        out.append(mine)
    return out


def build_updates(rng: random.Random, known: dict[str, int], clients: int, per_client: int, size: int):
    """Per phone, batches of case.update made when sent: each at the version the phones last saw of the case
    (``known``, updated from the answers) or at an older one, so the server merges field by field."""
    ids = sorted(known)
    counter = iter(range(10_000_000, 100_000_000))
    lock = threading.Lock()

    def make(seed: int):
        local = random.Random(seed)

        def batch() -> list[dict]:
            with lock:
                picks = [(cid, known[cid], next(counter)) for cid in local.sample(ids, size)]
            return [update_op(local, cid, version if local.random() < 0.5 else local.randint(1, version), seq)
                    for cid, version, seq in picks]
        return batch

    return [[make(rng.randrange(1 << 30)) for _ in range(per_client)] for _ in range(clients)]


def update_op(rng: random.Random, case_id: str, base_version: int, seq: int) -> dict:
    changes = {}
    if rng.random() < 0.6:
        changes["risk_level"] = rng.choice(RISKS)
    if not changes or rng.random() < 0.5:
        changes["description"] = f"{rng.choice(PLACES)}：{rng.choice(PROBLEMS)}（复查{seq}）"
    return {"op_id": str(uuid.uuid4()), "seq": seq, "type": "case.update", "case_id": case_id,
            "base_version": base_version, "changes": changes}


def bench_server(args) -> int:
    from server import ServerProcess

    print(f"engine: {args.db}   gunicorn: {args.workers} {args.worker_class} workers"
          + (f" x {args.threads} threads" if args.worker_class == "gthread" else ""))
    with tempfile.TemporaryDirectory(prefix="gridcase-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        database = Database(args.db, tmp, args.sql)
        print(f"database made (flask db upgrade + demo seed) in {time.perf_counter() - t0:.1f} s")
        server = ServerProcess(database.url, tmp, workers=args.workers, worker_class=args.worker_class,
                               threads=args.threads, extra_env={
                                   "GRIDCASE_SECRET_KEY": SECRET_KEY, "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY,
                                   # production password hashing (the server's defaults)
                                   "GRIDCASE_ARGON2_TIME_COST": "3", "GRIDCASE_ARGON2_MEMORY_KIB": "65536"})
        try:
            server.start()
            phones = [Phone(server.url, f"bench-phone-{i}") for i in range(args.clients)]
            r = phones[0].http.get(f"{server.url}/api/v1/regions/{GRID}/geojson", params={"level": "micro_grid"},
                                   timeout=30)
            r.raise_for_status()
            grids = micro_grids(r.json())
            print(f"{len(grids)} micro-grids of grid {GRID}: {', '.join(c for c, _ in grids)}")
            rng = random.Random(args.seed)
            # Warm up each worker (imports, the micro-grid index) outside the measurement.
            warm = build_batches(rng, grids, args.clients, 2, 10)
            run_phase("warm-up", phones, warm)

            batches = build_batches(rng, grids, args.clients, args.batches, args.batch_size)
            statements = PgStatements(database.url) if args.pg_statements else None
            create = run_phase("report.create", phones, batches)
            if statements:
                statements.show("report.create", create["ops"], args.top)
            if statements:
                statements.reset()
            replay = run_phase("replay (duplicate)", phones, batches)
            if statements:
                statements.show("replay", replay["ops"], args.top)
            known = {r["case_id"]: r["case_version"] for rs in create["results"] for r in rs if r.get("case_id")}
            updates = build_updates(rng, known, args.clients, args.update_batches, args.batch_size)
            if statements:
                statements.reset()
            update = run_phase("case.update (merges)", phones, updates, known)
            if statements:
                statements.show("case.update", update["ops"], args.top)
        except BaseException:
            print(server.log_text()[-5000:], file=sys.stderr)
            raise
        finally:
            server.stop()
            log = server.log_text()
            database.close()
    print()
    show(create, TARGETS[args.db], P99_TARGET_MS)
    show(replay, REPLAY_TARGET)
    show(update, UPDATE_TARGET)
    bad = [line for line in log.splitlines() if "database is locked" in line or "deadlock" in line.lower()
           or "Traceback" in line]
    if bad:
        print(f"\nserver log: {len(bad)} bad lines, e.g. {bad[:3]}")
    flags: dict[str, int] = {}
    for rs in create["results"]:
        for r in rs:
            for f in r.get("flags", []):
                flags[f] = flags.get(f, 0) + 1
    print(f"\nflags on created cases: {flags}")
    ok = (create["ops_per_s"] >= TARGETS[args.db] and create["p99_ms"] < P99_TARGET_MS
          and replay["ops_per_s"] >= REPLAY_TARGET and update["ops_per_s"] >= UPDATE_TARGET)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- profile


def profile(args) -> int:
    """The same work in one process through Flask's test client, under cProfile."""
    import cProfile
    import io
    import pstats
    import re

    os.environ.update({"GRIDCASE_SECRET_KEY": SECRET_KEY, "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY})
    with tempfile.TemporaryDirectory(prefix="gridcase-profile-") as tmp:
        tmp = Path(tmp)
        database = Database(args.db, tmp, args.sql)
        try:
            from app import create_app

            # one phone sending hundreds of batches a minute (--replays): above the per-device sync limit
            app = create_app({"DATABASE_URL": database.url, "MEDIA_DIR": str(tmp / "media"),
                              "SYNC_RATE_LIMIT_DEVICE": "100000 per minute", "SYNC_RATE_LIMIT_USER": "100000 per minute"})
            client = app.test_client()
            r = client.post("/api/v1/auth/login", json={"username": USER, "password": PASSWORD,
                                                        "device_id": "profile-phone"})
            headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
            geo = client.get(f"/api/v1/regions/{GRID}/geojson?level=micro_grid", headers=headers)
            grids = micro_grids(geo.get_json(force=True))
            rng = random.Random(args.seed)

            def send(ops):
                r = client.post("/api/v1/sync", headers=headers, json={
                    "device_id": "profile-phone", "client_time": datetime.now(timezone.utc).isoformat(), "ops": ops})
                assert r.status_code == 200, r.get_json()
                return r.get_json()["results"]

            # CPU spent inside the write transaction (on SQLite: holding the one write lock), apart
            from app.sync import services as sync_services

            in_lock = [0.0]
            apply_batch = sync_services._apply_batch

            def timed_apply_batch(*a, **kw):
                c0 = time.process_time()
                try:
                    return apply_batch(*a, **kw)
                finally:
                    in_lock[0] += time.process_time() - c0

            sync_services._apply_batch = timed_apply_batch
            statements = [0]  # SQL statements sent (an executemany counts once)

            def count(*_):
                statements[0] += 1

            with app.app_context():
                from sqlalchemy import event

                from app.extensions import db as _db

                event.listen(_db.engine, "before_cursor_execute", count)
            send(build_batches(rng, grids, 1, 1, 10)[0][0])  # warm-up
            batches = build_batches(rng, grids, 1, args.batches, args.batch_size)[0]
            phases = {}
            created: dict[str, int] = {}
            for name in ("report.create", "replay", "case.update"):
                if name == "case.update":
                    batches = build_updates(rng, created, 1, args.update_batches, args.batch_size)[0]
                # CPU time (not wall time: the machine is shared) is the measure; --cpu leaves cProfile out
                prof = cProfile.Profile(time.process_time) if not args.cpu else None
                t0, c0 = time.perf_counter(), time.process_time()
                in_lock[0] = 0.0
                statements[0] = 0
                n = 0
                if prof:
                    prof.enable()
                for batch in (batches * args.replays if name == "replay" else batches):
                    out = send(batch() if callable(batch) else batch)
                    n += len(out)
                    created.update({r["case_id"]: r["case_version"] for r in out if r.get("case_id")})
                if prof:
                    prof.disable()
                phases[name] = (prof, n, time.perf_counter() - t0, time.process_time() - c0, in_lock[0],
                                statements[0] / (len(batches) * (args.replays if name == "replay" else 1)))
            app_dir = re.escape(str(ROOT / "app") + os.sep)
            for name, (prof, n, wall, cpu, locked, per_batch) in phases.items():
                how = "under cProfile" if prof else "without cProfile"
                print(f"\n=== {name}: {n} ops in {wall:.2f} s {how}, CPU {cpu * 1000 / n:.3f} ms per op"
                      f" ({n / cpu:,.0f} ops per CPU second, one thread), of which in the write transaction"
                      f" {locked * 1000 / n:.3f} ms; {per_batch:.0f} SQL statements per batch ===")
                if prof is None:
                    continue
                out = io.StringIO()
                stats = pstats.Stats(prof, stream=out)
                stats.sort_stats("cumulative").print_stats(app_dir, args.top)
                print(_trim(out.getvalue()))
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
                print(f"--- {name}: where the time itself is spent (any code, by own time) ---")
                print(_trim(out.getvalue()))
            if args.profile_out:
                profs = [prof for prof, *_ in phases.values() if prof]
                whole = pstats.Stats(profs[0])
                for prof in profs[1:]:
                    whole.add(prof)
                whole.dump_stats(args.profile_out)
                print(f"\nwhole run's profile written to {args.profile_out} (python -m pstats)")
            with app.app_context():
                from app.extensions import db

                db.session.remove()
                db.engine.dispose()
        finally:
            database.close()
    return 0


def _trim(report: str) -> str:
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.replace(str(ROOT) + os.sep, "") for line in lines[start:] if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=25, help="report.create batches per client")
    parser.add_argument("--update-batches", type=int, default=10, help="case.update batches per client")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--profile", action="store_true", help="cProfile an in-process run instead")
    parser.add_argument("--profile-out", help="with --profile: write the whole run's stats here")
    parser.add_argument("--cpu", action="store_true", help="with --profile: CPU time per op only, no cProfile")
    parser.add_argument("--sql", action="append", default=[],
                        help="an experiment: SQL run on the new database before the server starts (repeatable)")
    parser.add_argument("--pg-statements", action="store_true",
                        help="PostgreSQL: print pg_stat_statements' top statements (--top) per phase")
    parser.add_argument("--top", type=int, default=25, help="with --profile: rows per phase")
    parser.add_argument("--replays", type=int, default=1,
                        help="with --profile: send the batches this many times in the replay phase")
    args = parser.parse_args()
    print("machine: " + "  ".join(f"{k}={v}" for k, v in machine().items()))
    if args.profile:
        print(f"engine: {args.db} (in-process, Flask test client, cProfile)")
        return profile(args)
    return bench_server(args)


if __name__ == "__main__":
    sys.exit(main())
