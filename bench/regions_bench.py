"""Regions benchmark: how fast a point finds its micro-grid, and how fast a login is.

    .venv/bin/python bench/regions_bench.py [--side 100] [--points 200000] [--logins 10] [--no-import]

Builds a county of ``side × side`` micro-grids (default 100 × 100 = 10,000, about Rui'an's 10,093) from a
jittered lattice like the demo city's, imports the whole five-level hierarchy into a temporary SQLite
database through ``import_regions`` (timed), then measures:

(a) ``MicroGridIndex.locate``: one point per call, on one core (target ≥ 50,000 lookups/s);
(b) ``MicroGridIndex.locate_many``: the same points in one call;
(c) logins through the Flask test client with the production Argon2id parameters (64 MiB, 3 passes).

Not a test: numbers depend on the machine, which is printed first.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEST, SOUTH = 120.40, 27.60
CELL_DEG = 0.003  # about 300 m: a real micro-grid is 30-300 households


from machine import machine  # noqa: E402  (bench/machine.py: one description of the machine)


def lattice(side: int, seed: int = 2) -> list[list[tuple[float, float]]]:
    rng = random.Random(seed)
    rows = []
    for j in range(side + 1):
        row = []
        for i in range(side + 1):
            x, y = WEST + i * CELL_DEG, SOUTH + j * CELL_DEG
            if 0 < i < side and 0 < j < side:
                x += rng.uniform(-0.25, 0.25) * CELL_DEG
                y += rng.uniform(-0.25, 0.25) * CELL_DEG
            row.append((round(x, 6), round(y, 6)))
        rows.append(row)
    return rows


def county(side: int) -> dict:
    """The hierarchy as a FeatureCollection: 4 townships, 5 × 5 villages each, grids of 2 × 2 micro-grids."""
    from shapely.geometry import Polygon, mapping
    from shapely.ops import unary_union

    pts = lattice(side)
    cells = {(i, j): Polygon([pts[j][i], pts[j][i + 1], pts[j + 1][i + 1], pts[j + 1][i]])
             for i in range(side) for j in range(side)}
    features = []

    def add(code, level, parent, i0, j0, n):
        geom = unary_union([cells[(i, j)] for i in range(i0, min(i0 + n, side)) for j in range(j0, min(j0 + n, side))])
        features.append({"type": "Feature", "geometry": mapping(geom),
                         "properties": {"code": code, "name": f"{level} {code}", "level": level, "parent": parent}})

    half = side // 2
    vsize = max(half // 5, 2)
    add("C", "city", None, 0, 0, side)
    for t, (ti, tj) in enumerate(((0, 0), (half, 0), (0, half), (half, half))):
        tcode = f"C{t}"
        add(tcode, "township", "C", ti, tj, side - half if ti or tj else half)
        for vi in range(ti, ti + (side - ti if ti else half), vsize):
            for vj in range(tj, tj + (side - tj if tj else half), vsize):
                vcode = f"{tcode}V{vi:03d}{vj:03d}"
                add(vcode, "village", tcode, vi, vj, vsize)
                for gi in range(vi, min(vi + vsize, ti + (side - ti if ti else half)), 2):
                    for gj in range(vj, min(vj + vsize, tj + (side - tj if tj else half)), 2):
                        gcode = f"{vcode}G{gi:03d}{gj:03d}"
                        add(gcode, "grid", vcode, gi, gj, 2)
                        for mi in range(gi, min(gi + 2, side)):
                            for mj in range(gj, min(gj + 2, side)):
                                add(f"M{mi:03d}{mj:03d}", "micro_grid", gcode, mi, mj, 1)
    return {"type": "FeatureCollection", "features": features}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def bench_locate(index, side: int, n_points: int) -> dict:
    rng = random.Random(11)
    span = side * CELL_DEG
    lats = [rng.uniform(SOUTH - 0.01, SOUTH + span + 0.01) for _ in range(n_points)]
    lons = [rng.uniform(WEST - 0.01, WEST + span + 0.01) for _ in range(n_points)]
    locate = index.locate
    for lat, lon in zip(lats[:2000], lons[:2000]):  # warm up
        locate(lat, lon)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for lat, lon in zip(lats, lons):
            locate(lat, lon)
        runs.append(n_points / (time.perf_counter() - start))
    many_runs = []
    for _ in range(3):
        start = time.perf_counter()
        many = index.locate_many(lats, lons)
        many_runs.append(n_points / (time.perf_counter() - start))
    single = [locate(lat, lon) for lat, lon in zip(lats[:20000], lons[:20000])]
    assert single == many[:20000], "locate and locate_many disagree"
    return {"points": n_points, "inside": sum(c is not None for c in many),
            "locate_per_s": statistics.median(runs), "locate_many_per_s": statistics.median(many_runs)}


def bench_logins(tmp: str, n: int) -> dict:
    from app import create_app
    from app.auth.passwords import DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST, _hasher_for
    from app.demo.services import seed_demo
    from app.extensions import db

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/logins.sqlite3", "MEDIA_DIR": tmp,
                      "LOGIN_RATE_LIMIT": "100000 per minute"})  # production Argon2 defaults: not overridden
    with app.app_context():
        db.create_all()
        seed_demo()
    client = app.test_client()
    hasher, stored = _hasher_for(DEFAULT_TIME_COST, DEFAULT_MEMORY_KIB)
    _, verify_s = timed(hasher.verify, stored, "gridcase-timing-equaliser")
    client.post("/api/v1/auth/login", json={"username": "admin", "password": "Gridcase-admin-2026",
                                             "device_id": "bench-warmup-0"})
    start = time.perf_counter()
    for i in range(n):
        r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                     "device_id": f"bench-device-{i:04d}"})
        assert r.status_code == 200, r.get_json()
    elapsed = time.perf_counter() - start
    with app.app_context():
        db.engine.dispose()
    return {"logins": n, "logins_per_s": n / elapsed, "ms_per_login": 1000 * elapsed / n,
            "argon2_verify_ms": 1000 * verify_s, "params": f"m={DEFAULT_MEMORY_KIB} KiB, t={DEFAULT_TIME_COST}, p=1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=100, help="micro-grids per side (default 100: 10,000)")
    parser.add_argument("--points", type=int, default=200_000, help="random points to locate")
    parser.add_argument("--logins", type=int, default=10, help="logins to time (about 0.1 s each)")
    parser.add_argument("--no-import", action="store_true", help="build the index in memory, skip the database")
    args = parser.parse_args()

    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    from shapely.geometry import shape

    from app.regions.services import MicroGridIndex

    doc, build_s = timed(county, args.side)
    micro = [f for f in doc["features"] if f["properties"]["level"] == "micro_grid"]
    print(f"built {len(doc['features'])} regions ({len(micro)} micro-grids) in {build_s:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        if args.no_import:
            codes = sorted(f["properties"]["code"] for f in micro)
            by_code = {f["properties"]["code"]: shape(f["geometry"]) for f in micro}
            index, index_s = timed(MicroGridIndex, codes, [by_code[c] for c in codes])
        else:
            from app import create_app
            from app.extensions import db
            from app.regions.services import import_regions, invalidate_index, micro_grid_index

            app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/regions.sqlite3", "MEDIA_DIR": tmp})
            with app.app_context():
                db.create_all()
                result, import_s = timed(import_regions, doc)
                print(f"import_regions: {result} in {import_s:.1f} s "
                      f"({len(doc['features']) / import_s:,.0f} regions/s, SQLite)")
                _, reimport_s = timed(import_regions, doc)
                print(f"re-import (all updated) in {reimport_s:.1f} s")
                invalidate_index()
                index, index_s = timed(micro_grid_index)
                db.engine.dispose()
        print(f"index of {len(index.codes)} micro-grids built in {index_s * 1000:.0f} ms")

        r = bench_locate(index, args.side, args.points)
        verdict = "meets" if r["locate_per_s"] >= 50_000 else "BELOW"
        print(f"(a) locate: {r['locate_per_s']:,.0f} lookups/s on one core ({verdict} the 50,000/s target); "
              f"{r['inside']:,} of {r['points']:,} points inside")
        print(f"(b) locate_many: {r['locate_many_per_s']:,.0f} points/s")

        lg = bench_logins(tmp, args.logins)
        print(f"(c) login: {lg['logins_per_s']:.1f} logins/s ({lg['ms_per_login']:.0f} ms each, of which one Argon2id "
              f"verify ≈ {lg['argon2_verify_ms']:.0f} ms; {lg['params']}). Deliberately slow: the hash cost is what "
              f"makes an offline guess at a stolen password table as slow as a login; it is paid once per login, "
              f"not per request (requests carry a JWT).")


if __name__ == "__main__":
    main()
