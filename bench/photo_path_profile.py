"""CPU of the photo request path in one process: ``POST /media/missing`` + ``PUT /media/<sha>`` through the
Flask test client, photos stored in S3 (moto's server, in its own process so its CPU is not counted here).

    .venv/bin/python bench/photo_path_profile.py                # CPU ms per photo, by stage
    .venv/bin/python bench/photo_path_profile.py --profile 25   # and cProfile's top 25 functions

The photos are the province load test's (``bench/load_province.py``: 1600 x 1200 JPEGs of ~230 KB, each
made unique by its JFIF density: clean uploads, as the PWA sends). The database is SQLite in a temp
directory (the load test's PostgreSQL costs the app little CPU: the figures here are the app's side). What
is measured is this process's CPU time
(``time.process_time``), so other load on the machine moves it far less than wall time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

BUCKET = "gridcase-bench"
RAISED = "100000 per minute"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(workdir: Path) -> tuple[subprocess.Popen, str]:
    import requests

    port = free_port()
    spool = workdir / "moto-tmp"
    spool.mkdir()
    env = dict(os.environ, TMPDIR=str(spool), MOTO_S3_DEFAULT_KEY_BUFFER_SIZE="1")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    return proc, url


def photo_bodies(n: int, distinct: int = 8) -> list[tuple[str, bytes]]:
    from load_province import Photos

    pool = Photos(distinct, seed=7)
    return [pool.next() for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="photos to upload after the warm-up (default 60)")
    parser.add_argument("--profile", type=int, metavar="N", default=0, help="print cProfile's top N (cumulative)")
    parser.add_argument("--local", action="store_true", help="store on local disk instead of S3")
    args = parser.parse_args()

    from boto3.session import Session
    from factories import make_users

    from app import create_app
    from app.demo.services import seed_demo
    from app.extensions import db

    with tempfile.TemporaryDirectory(prefix="photo-path-") as tmp:
        workdir = Path(tmp)
        moto = None
        config = {
            "TESTING": False, "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
            "JWT_SECRET_KEY": "bench-jwt-secret-key-0123456789abcdef0123456789",
            "MEDIA_DIR": str(workdir / "media"), "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024,
            "UPLOAD_RATE_LIMIT_DEVICE": RAISED, "UPLOAD_RATE_LIMIT_USER": RAISED,
            "MEDIA_DAILY_BYTES_PER_USER": 10**12,
        }
        try:
            if not args.local:
                moto, url = start_moto(workdir)
                Session().client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                                 aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
                config |= {"MEDIA_STORAGE": "s3", "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": url,
                           "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "testing",
                           "S3_SECRET_ACCESS_KEY": "testing", "S3_PREFIX": "gridcase"}
            app = create_app(config)
            with app.app_context():
                db.create_all()
                seed_demo()
                make_users()
                db.session.remove()
            client = app.test_client()
            r = client.post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                        "device_id": "bench-device"})
            assert r.status_code == 200, r.get_json()
            auth = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
            photos = photo_bodies(args.photos + 5)

            missing_cpu = [0.0]

            def one(sha: str, body: bytes) -> None:
                t0 = time.process_time()
                r = client.post("/api/v1/media/missing", json={"hashes": [sha]}, headers=auth)
                missing_cpu[0] += time.process_time() - t0
                assert r.status_code == 200 and r.get_json()["missing"] == [sha], r.get_json()
                r = client.put(f"/api/v1/media/{sha}", data=body, headers={**auth, "Content-Type": "image/jpeg"})
                assert r.status_code == 201, r.get_json()

            for sha, body in photos[:5]:  # warm-up: imports, the store's client, codec tables
                one(sha, body)
            missing_cpu[0] = 0.0
            work = photos[5:]
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for sha, body in work:
                one(sha, body)
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            # The pipeline alone, on the same bodies, for the split.
            from app.media.pipeline import process_photo

            path = workdir / "one.jpg"
            pipe = 0.0
            for _sha, body in work[:20]:
                path.write_bytes(body)
                t0 = time.process_time()
                process_photo(path)
                pipe += time.process_time() - t0
            pipe /= min(20, len(work))
        finally:
            if moto is not None:
                moto.terminate()
                moto.wait(10)

    n = len(work)
    size = sum(len(b) for _s, b in work) / n
    print(f"{n} photos of {size / 1024:.0f} KiB, store {'local' if args.local else 'S3 (moto)'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  app CPU per photo (missing + PUT): {1000 * cpu / n:.1f} ms"
          f"{' (under cProfile)' if profiler else ''}; wall {1000 * wall / n:.1f} ms")
    print(f"  of which POST /media/missing: {1000 * missing_cpu[0] / n:.1f} ms; process_photo (run alone): "
          f"{1000 * pipe:.1f} ms")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
