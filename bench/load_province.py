"""Province load (issue 7): a whole deployment on one machine, driven by hundreds of phones.

    .venv/bin/python bench/load_province.py                         # defaults: ~6-8 minutes in all
    .venv/bin/python bench/load_province.py --closed-s 30 --rates 30,60,120 --step-s 15   # shorter

Everything runs on the loopback and stops by itself (``--max-minutes`` bounds the whole run, set-up included):

- PostgreSQL (``tests/pgserver.py``, a throwaway cluster, durability on),
- an S3-compatible server: moto's server in its own process (``python -m moto.server``), objects spooled to
  a temporary directory rather than kept in its memory,
- gunicorn as in production: ``gunicorn -c gunicorn.conf.py wsgi:app`` (or, while that file does not exist,
  2 gthread workers x 4 threads) with ``GRIDCASE_DATABASE_URL`` on PostgreSQL and ``GRIDCASE_MEDIA_STORAGE=s3``.

The configuration is production's except for what a load test from one address with few accounts needs:
- every rate limit (sync, upload, login per user and per address) is raised to 1,000,000 per minute:
  200 phones behind 127.0.0.1, about a dozen phones per account;
- Argon2 is cheapened to t=1, m=1 MiB (the hashes are made when the users are created): 200 logins at the
  production cost would take a minute of CPU and are not what is measured;
- access tokens live 120 minutes, so that no phone refreshes during the run.

The database is made as an operator makes it: ``flask db upgrade``, ``flask demo seed``, and
``flask users create … --password-stdin`` for a grid worker in one grid of each of the demo city's 16
communities (plus the demo's ``wanggeyuan``) and a reviewer for each street. Reports lie inside their
user's grid: points are sampled inside the micro-grid polygons from ``GET /regions/<grid>/geojson``.

A phone (one thread, one ``requests.Session``, one device id, logged in once) sends batches of 1-10 ops
(mostly 1-3, as a phone online sends what it just made). The mix is the county's (see ``MIX``): 20 %
``report.create`` with 1-3 photos, 40 % ``case.note`` (one in five with a rectification photo) and 40 %
``case.update`` on its own earlier reports (at the version it last saw); ``--mix 70,15,15`` is the
photo-heavy stress mix of the first runs (one photo per report, none on notes). Photos go first
(``POST /media/missing``, then ``PUT /media/<sha256>`` for each missing one), then ``POST /sync``.
Photos are 1600 x 1200 JPEGs of about 230 KB with no metadata (what the PWA's canvas uploads): a pool of
distinct images (distinct dHash, as real photos have), each made unique per report by a counter in its JFIF
header's pixel density, so every sha256 differs, the file still decodes, and the server keeps it as its
own display copy, as it does the PWA's (two objects per photo). ``--photo-marker com`` puts the counter in
a comment segment instead, as the runs before 2026-11-25 evening did (stripped: three objects per photo).
Reviewers (township and city) page the review queue and the figures.

Phase (a), closed loop: all N phones online at once, each syncing in a loop. ``--closed-rates 60,0``: first
with exponential think times such that the phones together offer 60 ops/s (a county's evening peak), then
(0) with each thinking only 1-3 s, a stress test. Phase (b), open loop: sync batches
arrive at a rising rate of ops/s (Poisson), each taken by an idle phone; a step that cannot keep up
(sustained < 90 % of offered, a backlog, p99 over 5 s, or errors) ends the phase. CPU of gunicorn, PostgreSQL,
moto, this client and everything else on the machine is read from /proc per phase and step; server-side
request and photo-pipeline times from ``/metrics``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import requests

SECRET_KEY = "load-secret-key-0123456789abcdef0123456789abcdef"
JWT_SECRET_KEY = "load-jwt-secret-key-0123456789abcdef0123456789abcdef"
BUCKET = "gridcase-load"
PASSWORD = "Load-test-2026-grid"
RAISED_LIMIT = "1000000 per minute"
CST = timezone(timedelta(hours=8))
TICK = os.sysconf("SC_CLK_TCK")

CATEGORIES = ["fire_hazard", "ebike_charging", "gas_safety", "public_order", "road_safety", "sanitation",
              "illegal_building", "flood_typhoon", "dispute", "work_safety", "vulnerable_people", "other"]
PROBLEMS = ["楼道堆放纸箱和旧家具，堵塞消防通道", "电动车停在楼道内充电，电线私拉乱接", "液化气瓶与灶具间距不足，软管老化",
            "夜间有人聚集喝酒喧哗，邻居多次投诉", "路面塌陷约半米见方，夜间无警示标志", "垃圾桶满溢，周边有积水和异味",
            "屋顶违规加盖彩钢棚，约二十平方米", "排水沟堵塞，暴雨时积水严重", "两户邻居因漏水问题发生争执",
            "车间灭火器过期，安全出口被货物占用", "独居老人近两天未见出门，电话无人接听", "广告牌松动，大风天气有坠落风险"]
NOTES = ["已再次上门提醒", "住户表示今天下午整改", "物业已到场查看", "复查：仍未整改", "已联系社区民警", "现场已设置警示"]
RISKS = ["red", "yellow", "blue"]
# Ops per batch: a phone that is online sends what it has just made (mostly 1-3), sometimes a backlog.
BATCH_SIZES = list(range(1, 11))
BATCH_WEIGHTS = [30, 20, 15, 10, 7, 6, 4, 3, 3, 2]
MEAN_BATCH = sum(s * w for s, w in zip(BATCH_SIZES, BATCH_WEIGHTS)) / sum(BATCH_WEIGHTS)
# The county's mix, from the issue's own figures: 3 million reports a day from ~570,000 grid workers is ~5.3
# reports per worker per day; a county of 20,000 workers then makes ~105,000 reports a day, 1.2/s on average and
# ~12/s at the evening peak (10x). "~60 ops/s at the peak" is therefore ~5 ops per report: the report itself and
# about four follow-ups (notes as the matter is handled, field edits). Reports carry 1-3 photos (mean 1.5), one
# note in five carries a rectification photo. ``--mix`` changes the shares (e.g. 70,15,15 is the photo-heavy
# stress mix of earlier runs).
MIX = (("report.create", 0.20), ("case.note", 0.40), ("case.update", 0.40))
PHOTOS_PER_REPORT = ([1, 2, 3], [60, 30, 10])
NOTE_PHOTO_SHARE = 0.2
DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# ---------------------------------------------------------------------------------------------- machine


from machine import machine  # noqa: E402  (bench/machine.py: one description of the machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- CPU


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_ticks(root: int | None) -> int:
    """CPU ticks of a process and its live descendants; children that exited and were reaped are in their
    parent's cutime/cstime, so the difference of two readings is the tree's CPU in between."""
    if not root:
        return 0
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s is not None:
                stats[int(entry)] = s
    children = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(children.get(pid, ()))
    return total


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts[:8]) - idle, sum(parts[:8])


class CpuMeter:
    def __init__(self, pids: dict[str, int | None]):
        self.pids = pids

    def sample(self) -> dict:
        out = {name: tree_ticks(pid) for name, pid in self.pids.items()}
        t = os.times()
        out["client"] = int((t.user + t.system) * TICK)
        out["_busy"], out["_total"] = machine_busy_ticks()
        out["_t"] = time.monotonic()
        return out

    @staticmethod
    def cores(a: dict, b: dict) -> dict:
        """Cores used by each part between two samples (1.0 = one core busy all the time)."""
        wall = b["_t"] - a["_t"]
        out = {k: (b[k] - a[k]) / TICK / wall for k in a if not k.startswith("_")}
        out["machine"] = (b["_busy"] - a["_busy"]) / TICK / wall
        out["other"] = max(0.0, out["machine"] - sum(v for k, v in out.items() if k != "machine"))
        return out


# ---------------------------------------------------------------------------------------------- services


class Moto:
    """moto's S3 server in its own process, objects spooled to disk (not held in its memory)."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        spool = workdir / "moto-tmp"
        spool.mkdir()
        env = dict(os.environ, TMPDIR=str(spool), MOTO_S3_DEFAULT_KEY_BUFFER_SIZE="1")
        self.log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        import boto3

        boto3.session.Session().client("s3", endpoint_url=self.url, region_name="us-east-1",
                                       aws_access_key_id="testing",
                                       aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)

    def bucket_bytes(self) -> int:
        import boto3

        s3 = boto3.session.Session().client("s3", endpoint_url=self.url, region_name="us-east-1",
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            total += sum(obj["Size"] for obj in page.get("Contents", ()))
        return total

    def stop(self) -> None:
        _stop_group(self.proc)
        self.log.close()


def _stop_group(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def app_env(db_url: str, moto: Moto, workdir: Path, workers: int | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")}
    if workers:
        env["GRIDCASE_WORKERS"] = str(workers)  # else gunicorn.conf.py's default: 2 x cores + 1
    env.update({
        "GRIDCASE_DATABASE_URL": db_url,
        "GRIDCASE_SECRET_KEY": SECRET_KEY, "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY,
        "GRIDCASE_MEDIA_DIR": str(workdir / "media"),  # upload spooling only; photos go to S3
        "GRIDCASE_MEDIA_STORAGE": "s3", "GRIDCASE_S3_BUCKET": BUCKET, "GRIDCASE_S3_ENDPOINT_URL": moto.url,
        "GRIDCASE_S3_REGION": "us-east-1", "GRIDCASE_S3_ACCESS_KEY_ID": "testing",
        "GRIDCASE_S3_SECRET_ACCESS_KEY": "testing", "GRIDCASE_S3_PREFIX": "gridcase",
        # Deviations from production (see the module docstring).
        "GRIDCASE_SYNC_RATE_LIMIT_DEVICE": RAISED_LIMIT, "GRIDCASE_SYNC_RATE_LIMIT_USER": RAISED_LIMIT,
        "GRIDCASE_UPLOAD_RATE_LIMIT_DEVICE": RAISED_LIMIT, "GRIDCASE_UPLOAD_RATE_LIMIT_USER": RAISED_LIMIT,
        "GRIDCASE_LOGIN_RATE_LIMIT": RAISED_LIMIT, "GRIDCASE_LOGIN_IP_RATE_LIMIT": RAISED_LIMIT,
        "GRIDCASE_ARGON2_TIME_COST": "1", "GRIDCASE_ARGON2_MEMORY_KIB": "1024",
        "GRIDCASE_ACCESS_TOKEN_MINUTES": "120",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def flask(env: dict, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=str(ROOT), env=env,
                          input=stdin, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def worker_grids(n: int) -> list[str]:
    """One grid in each community of the demo city (33038100[1-4]00[1-4]0[1-4]), spread over its grids."""
    grids = [f"330381{t:03d}{v:03d}{(t + v) % 4 + 1:02d}" for t in range(1, 5) for v in range(1, 5)]
    return grids[:n]


def seed(env: dict, n_workers: int) -> dict:
    t0 = time.perf_counter()
    flask(env, "db", "upgrade")
    flask(env, "demo", "seed")
    workers = [("wanggeyuan", "Gridcase-grid-2026", "33038100100101")]
    jobs = []
    for grid in worker_grids(n_workers):
        jobs.append((f"gw{grid[-8:]}", "grid_worker", grid))
    reviewers = [("reviewer", "Gridcase-review-2026", "330381001"), ("admin", "Gridcase-admin-2026", "330381")]
    for t in (2, 3, 4):
        jobs.append((f"rv330381{t:03d}", "reviewer", f"330381{t:03d}"))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda j: flask(env, "users", "create", j[0], "--role", j[1], "--region", j[2],
                                      "--password-stdin", stdin=PASSWORD + "\n"), jobs))
    for name, role, region in jobs:
        (workers if role == "grid_worker" else reviewers).append((name, PASSWORD, region))
    return {"workers": workers, "reviewers": reviewers, "seconds": time.perf_counter() - t0}


class Gunicorn:
    def __init__(self, env: dict, workdir: Path, app_spec: str = "wsgi:app"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(env)
        metrics_dir = workdir / "prometheus"
        metrics_dir.mkdir()
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        conf = ROOT / "gunicorn.conf.py"
        if conf.exists():
            env["GRIDCASE_BIND"] = f"127.0.0.1:{self.port}"
            cmd = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--preload", app_spec]
            self.how = f"gunicorn -c gunicorn.conf.py --preload {app_spec}"
        else:
            cmd = [sys.executable, "-m", "gunicorn", app_spec, "--preload", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", "2", "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-"]
            self.how = f"gunicorn --workers 2 --worker-class gthread --threads 4 {app_spec} (no gunicorn.conf.py)"
        self.log_path = workdir / "gunicorn.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not become ready:\n" + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        time.sleep(1.0)  # let every worker boot
        kids = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                if (_stat(pid) or (0, 0))[0] == self.proc.pid]
        self.workers = len(kids)

    def stop(self) -> None:
        _stop_group(self.proc, timeout=30)
        self.log.close()

    def log_problems(self) -> list[str]:
        """The server log's problem lines (cut to 300 characters); with any, the whole log is kept beside
        the temporary directory (which is removed) and its path is the last line."""
        text = self.log_path.read_text(errors="replace")
        problems = [line[:300] for line in text.splitlines()
                    if "Traceback" in line or "[CRITICAL]" in line or "WORKER TIMEOUT" in line or "[ERROR]" in line
                    or '"status": "5' in line][:20]
        if problems:
            kept = Path(tempfile.gettempdir()) / f"gridcase-load-server-{time.strftime('%Y%m%d-%H%M%S')}.log"
            shutil.copyfile(self.log_path, kept)
            problems.append(f"whole server log kept in {kept}")
        return problems


# ---------------------------------------------------------------------------------------------- photos


class Photos:
    """Distinct base images (different dHash, as real photos), each used many times with a counter in its
    JFIF header's pixel density: every body's sha256 differs, the image decodes the same, and the file stays
    what the PWA's canvas uploads (no metadata: the server keeps it as its own display copy). ``marker="com"``
    puts the counter in a comment segment instead (the first runs' photos: re-stripped, three objects)."""

    def __init__(self, n: int, seed: int, marker: str = "jfif"):
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(seed)
        texture = rng.normal(0, 5.5, (1200, 1600, 3)).astype(np.float32)
        self.bases = []
        for _ in range(n):
            low = rng.uniform(30, 225, (6, 8, 3)).astype(np.uint8)
            smooth = np.asarray(Image.fromarray(low).resize((1600, 1200), Image.Resampling.BICUBIC), np.float32)
            buf = io.BytesIO()
            Image.fromarray(np.clip(smooth + texture, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
            self.bases.append(buf.getvalue())
        assert all(b[6:11] == b"JFIF\x00" and b[18:20] == b"\x00\x00" for b in self.bases)
        self.marker = marker
        self.counter = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[str, bytes]:
        with self.lock:
            self.counter += 1
            n = self.counter
        base = self.bases[n % len(self.bases)]
        if self.marker == "com":
            comment = b"gridcase-load %012d" % n
            body = base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]
        else:  # units 0 (aspect ratio only), X and Y density 1..65535: 2^32 distinct files per base image
            high, low = divmod(n // len(self.bases), 65535)
            body = base[:13] + b"\x00" + (high + 1).to_bytes(2, "big") + (low + 1).to_bytes(2, "big") + base[18:]
        return hashlib.sha256(body).hexdigest(), body

    @property
    def mean_size(self) -> float:
        return sum(map(len, self.bases)) / len(self.bases)


# ---------------------------------------------------------------------------------------------- stats


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


class Tally:
    """What one phase or step saw (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sync_ms: list[float] = []
        self.cycle_ms: list[float] = []  # photos + sync, from when the batch was due (open loop: queueing too)
        self.put_ms: list[float] = []
        self.review_ms: list[float] = []
        self.ops = Counter()
        self.results = Counter()
        self.http = Counter()  # (endpoint, status) for every non-2xx
        self.errors: list[str] = []
        self.photos = 0
        self.syncs = 0
        self.ops_done = 0
        self.reviews = 0
        self.resent = 0

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 8:
                self.errors.append(text[:300])

    @property
    def non2xx(self) -> int:
        return sum(self.http.values())

    @property
    def status5xx(self) -> int:
        return sum(n for (_, s), n in self.http.items() if isinstance(s, int) and s >= 500)


# ---------------------------------------------------------------------------------------------- phones


class Phone:
    def __init__(self, base_url: str, username: str, password: str, device_id: str, points: list, photos: Photos,
                 rng: random.Random):
        self.base, self.device_id, self.points, self.photos, self.rng = base_url, device_id, points, photos, rng
        self.http = requests.Session()
        r = self.http.post(base_url + "/api/v1/auth/login", timeout=60,
                           json={"username": username, "password": password, "device_id": device_id})
        r.raise_for_status()
        self.auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.json_headers = {**self.auth, "Content-Type": "application/json"}
        self.photo_headers = {**self.auth, "Content-Type": "image/jpeg"}
        self.cases: dict[str, int] = {}  # own cases -> last version seen
        self.case_ids: list[str] = []
        self.seq = 0

    def _op(self, kind: str, photo_bodies: dict) -> dict:
        rng = self.rng
        self.seq += 1
        now = datetime.now(CST)
        if kind != "report.create" and self.case_ids:
            case_id = self.case_ids[-1 - min(len(self.case_ids) - 1, int(rng.expovariate(0.3)))]
            if kind == "case.note":
                photos = []
                if rng.random() < NOTE_PHOTO_SHARE:
                    sha, body = self.photos.next()
                    photo_bodies[sha] = body
                    photos = [{"sha256": sha, "role": "rectification"}]
                return {"op_id": str(uuid.uuid4()), "seq": self.seq, "type": "case.note", "case_id": case_id,
                        "note": {"id": str(uuid.uuid4()), "text": f"{rng.choice(NOTES)}（{self.seq}）",
                                 "photos": photos, "captured_at": now.isoformat(timespec="seconds")}}
            changes = {"risk_level": rng.choice(RISKS)} if rng.random() < 0.6 else {
                "description": f"{rng.choice(PROBLEMS)}（补充{self.seq}）"}
            return {"op_id": str(uuid.uuid4()), "seq": self.seq, "type": "case.update", "case_id": case_id,
                    "base_version": self.cases[case_id], "changes": changes}
        code, lat, lon = rng.choice(self.points)
        shas = []
        for _ in range(rng.choices(*PHOTOS_PER_REPORT)[0]):
            sha, body = self.photos.next()
            photo_bodies[sha] = body
            shas.append(sha)
        return {"op_id": str(uuid.uuid4()), "seq": self.seq, "type": "report.create", "report": {
            "id": str(uuid.uuid4()), "category": rng.choice(CATEGORIES), "risk_level": rng.choice(RISKS),
            "description": rng.choice(PROBLEMS), "micro_grid_id": code,
            "location": {"lat": lat, "lon": lon, "accuracy_m": rng.choice((5, 8, 12)), "crs": "wgs84"},
            "captured_at": (now - timedelta(seconds=rng.randint(5, 600))).isoformat(timespec="seconds"),
            "photos": shas}}

    def _send(self, tally: Tally, method: str, url: str, **kw) -> requests.Response:
        """One request; resent once if the connection dropped before an answer (a keep-alive connection the
        server closed as we reused it: the phone resends, safely, since ops and photo PUTs are idempotent)."""
        try:
            return self.http.request(method, url, timeout=120, **kw)
        except requests.ConnectionError:
            with tally.lock:
                tally.resent += 1
            return self.http.request(method, url, timeout=120, **kw)

    def _count(self, tally: Tally, endpoint: str, r: requests.Response) -> bool:
        if 200 <= r.status_code < 300:
            return True
        with tally.lock:
            tally.http[(endpoint, r.status_code)] += 1
        tally.error(f"{endpoint} HTTP {r.status_code}: {r.text[:200]}")
        return False

    def cycle(self, tally: Tally, due: float | None = None) -> None:
        """One sync as a phone does it: missing photos, their uploads, then the batch."""
        rng = self.rng
        started = due if due is not None else time.perf_counter()
        size = rng.choices(BATCH_SIZES, BATCH_WEIGHTS)[0]
        bodies: dict[str, bytes] = {}
        ops = []
        endpoint = "?"
        for _ in range(size):
            x, kind = rng.random(), "report.create"
            if x >= MIX[0][1]:
                kind = "case.note" if x < MIX[0][1] + MIX[1][1] else "case.update"
            ops.append(self._op(kind, bodies))
        try:
            if bodies:
                endpoint = "media/missing"
                r = self._send(tally, "POST", self.base + "/api/v1/media/missing",
                               data=DUMPS({"hashes": list(bodies)}), headers=self.json_headers)
                if self._count(tally, "media/missing", r):
                    for sha in r.json()["missing"]:
                        t0 = time.perf_counter()
                        endpoint = "media PUT"
                        p = self._send(tally, "PUT", f"{self.base}/api/v1/media/{sha}", data=bodies[sha],
                                       headers=self.photo_headers)
                        dt = (time.perf_counter() - t0) * 1000
                        if self._count(tally, "media PUT", p):
                            with tally.lock:
                                tally.put_ms.append(dt)
                                tally.photos += 1
            t0 = time.perf_counter()
            body = DUMPS({"device_id": self.device_id, "client_time": datetime.now(UTC).isoformat(),
                          "outbox": {"pending": len(ops)}, "ops": ops})
            endpoint = "sync"
            r = self._send(tally, "POST", self.base + "/api/v1/sync", data=body.encode(), headers=self.json_headers)
            t1 = time.perf_counter()
        except requests.RequestException as exc:
            with tally.lock:
                tally.http[(endpoint, type(exc).__name__)] += 1
            tally.error(f"{endpoint} {type(exc).__name__}: {exc}")
            return
        if not self._count(tally, "sync", r):
            return
        results = r.json()["results"]
        statuses = Counter(res["status"] for res in results)
        for res, op in zip(results, ops):
            if res.get("case_id") and res.get("case_version"):
                if res["case_id"] not in self.cases:
                    self.case_ids.append(res["case_id"])
                self.cases[res["case_id"]] = max(self.cases.get(res["case_id"], 0), res["case_version"])
            if res["status"] in ("rejected", "retry", "held"):
                tally.error(f"{op['type']} {res['status']}: {json.dumps(res, ensure_ascii=False)[:200]}")
        with tally.lock:
            tally.sync_ms.append((t1 - t0) * 1000)
            tally.cycle_ms.append((t1 - started) * 1000)
            tally.syncs += 1
            tally.ops_done += len(ops)
            tally.ops.update(op["type"] for op in ops)
            tally.results.update(statuses)


class Reviewer(threading.Thread):
    def __init__(self, base: str, username: str, password: str, region: str, stop: threading.Event, rng):
        super().__init__(daemon=True)
        self.base, self.region, self.stop_event, self.rng = base, region, stop, rng
        self.http = requests.Session()
        r = self.http.post(base + "/api/v1/auth/login", timeout=60,
                           json={"username": username, "password": password, "device_id": f"desk-{username}"})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        self.tally: Tally | None = None

    def run(self) -> None:
        queries = [("/api/v1/cases", {}), ("/api/v1/cases", {"state": "reported"}),
                   ("/api/v1/cases", {"risk_level": "red", "sort": "-reported_at"}),
                   ("/api/v1/cases", {"flag": "possible_duplicate"}), ("/api/v1/stats", {"region": self.region})]
        while not self.stop_event.is_set():
            path, params = self.rng.choice(queries)
            tally = self.tally
            t0 = time.perf_counter()
            try:
                r = self.http.get(self.base + path, params=params, timeout=120)
                dt = (time.perf_counter() - t0) * 1000
                if tally is not None:
                    with tally.lock:
                        if 200 <= r.status_code < 300:
                            tally.review_ms.append(dt)
                            tally.reviews += 1
                        else:
                            tally.http[(path, r.status_code)] += 1
                    if r.status_code >= 300:
                        tally.error(f"{path} HTTP {r.status_code}: {r.text[:200]}")
            except requests.RequestException as exc:
                if tally is not None:
                    with tally.lock:
                        tally.http[(path, type(exc).__name__)] += 1
            self.stop_event.wait(self.rng.uniform(2, 5))


# ---------------------------------------------------------------------------------------------- metrics


_METRIC = re.compile(r'^(gridcase_photo_pipeline_seconds|gridcase_http_request_seconds|gridcase_http_request_cpu_seconds)'
                     r'_(sum|count|total)(\{[^}]*\})? (\S+)$')


def scrape(base: str) -> dict:
    """Server-side seconds and counts: the photo pipeline, and requests by endpoint (wall and the serving
    thread's CPU; summed over workers)."""
    try:
        text = requests.get(base + "/metrics", timeout=30).text
    except requests.RequestException:
        return {}
    out: dict = defaultdict(float)
    for line in text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        name, kind, labels, value = m.groups()
        key = "photo_pipeline"
        if name != "gridcase_photo_pipeline_seconds":
            ep = re.search(r'endpoint="([^"]*)"', labels or "")
            key = ep.group(1) if ep else "?"
        if name == "gridcase_http_request_cpu_seconds":
            kind = "cpu"
        out[(key, kind)] += float(value)
    return out


def server_means(a: dict, b: dict) -> dict:
    """Mean server-side ms per request (or per photo) between two scrapes, for the endpoints that matter:
    (count, wall ms, CPU ms of the serving thread or None)."""
    out = {}
    for key in ("photo_pipeline", "sync.push", "media.put_photo", "media.missing", "cases.case_queue", "stats.stats"):
        n = b.get((key, "count"), 0) - a.get((key, "count"), 0)
        if n:
            cpu = (b.get((key, "cpu"), 0) - a.get((key, "cpu"), 0)) / n * 1000 if (key, "cpu") in b else None
            out[key] = (n, (b.get((key, "sum"), 0) - a.get((key, "sum"), 0)) / n * 1000, cpu)
    return out


# ---------------------------------------------------------------------------------------------- phases


def row(name: str, tally: Tally, wall: float, cpu: dict, server: dict, offered: float | None = None) -> dict:
    return {"name": name, "offered": offered, "wall": wall, "ops_s": tally.ops_done / wall,
            "reports_s": tally.ops["report.create"] / wall, "photos_s": tally.photos / wall,
            "syncs_s": tally.syncs / wall,
            "sync_p50": pct(tally.sync_ms, 50), "sync_p99": pct(tally.sync_ms, 99),
            "cycle_p50": pct(tally.cycle_ms, 50), "cycle_p99": pct(tally.cycle_ms, 99),
            "put_p50": pct(tally.put_ms, 50), "put_p99": pct(tally.put_ms, 99),
            "review_p50": pct(tally.review_ms, 50), "review_p99": pct(tally.review_ms, 99), "reviews": tally.reviews,
            "non2xx": tally.non2xx, "resent": tally.resent, "s5xx": tally.status5xx, "retry": tally.results.get("retry", 0),
            "rejected": tally.results.get("rejected", 0), "results": dict(tally.results),
            "http": {f"{k[0]} {k[1]}": v for k, v in tally.http.items()}, "errors": tally.errors,
            "cpu": cpu, "server": server}


def closed_loop(phones: list[Phone], seconds: float, reviewers: list[Reviewer], meter: CpuMeter, base: str,
                rate: float = 0.0) -> dict:
    """Every phone online at once, each syncing in a loop. With ``rate`` > 0 a phone thinks an exponential time
    between its syncs (mean: phones x mean batch / rate), so that together they offer ``rate`` ops/s, a
    device population at a given load; with 0 each thinks 1-3 s (a stress test: 200 phones then offer far
    more than a county's peak)."""
    tally = Tally()
    stop_at = time.perf_counter() + seconds
    for rv in reviewers:
        rv.tally = tally
    per_phone = rate / MEAN_BATCH / len(phones) if rate else 0.0

    def think(phone: Phone) -> float:
        return phone.rng.expovariate(per_phone) if per_phone else phone.rng.uniform(1, 3)

    def pause(seconds: float) -> None:  # a phone thinking past the end of the phase stops at the end
        time.sleep(max(0.0, min(seconds, stop_at - time.perf_counter())))

    def run(phone: Phone) -> None:
        pause(phone.rng.uniform(0, 2) if not per_phone else think(phone))  # phones do not all start at once
        while time.perf_counter() < stop_at:
            phone.cycle(tally)
            pause(think(phone))

    m0, c0, t0 = scrape(base), meter.sample(), time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, stop_at - time.perf_counter() + 180))
    wall, c1, m1 = time.perf_counter() - t0, meter.sample(), scrape(base)
    for rv in reviewers:
        rv.tally = None
    name = f"{len(phones)} phones" + (f" @{rate:g}" if rate else " 1-3 s")
    return row(name, tally, wall, CpuMeter.cores(c0, c1), server_means(m0, m1), rate or None)


def open_loop(phones: list[Phone], rates: list[float], step_s: float, reviewers: list[Reviewer], meter: CpuMeter,
              base: str, deadline: float) -> list[dict]:
    jobs: queue.Queue = queue.Queue()
    state = {"tally": None}
    done = threading.Event()

    def device(phone: Phone) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            tally, due = job
            if tally is state["tally"]:  # a job left over from a finished step is dropped
                phone.cycle(tally, due)

    threads = [threading.Thread(target=device, args=(p,), daemon=True) for p in phones]
    for t in threads:
        t.start()
    rows = []
    rng = random.Random(7)
    try:
        for rate in rates:
            if time.monotonic() + step_s + 30 > deadline:
                print(f"  (time budget: stopping before {rate:g} ops/s)", flush=True)
                break
            tally = Tally()
            state["tally"] = tally
            for rv in reviewers:
                rv.tally = tally
            batches_per_s = rate / MEAN_BATCH
            m0, c0 = scrape(base), meter.sample()
            t0 = time.perf_counter()
            end = t0 + step_s
            nxt = t0
            while True:
                nxt += rng.expovariate(batches_per_s)
                if nxt >= end:
                    break
                delay = nxt - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                jobs.put((tally, nxt))
            time.sleep(max(0.0, end - time.perf_counter()))
            backlog = jobs.qsize()
            c1, wall = meter.sample(), time.perf_counter() - t0
            # Count what the step achieved within its own time, then let in-flight work finish (bounded).
            snapshot = (tally.ops_done, tally.ops["report.create"], tally.photos)
            drain_until = time.perf_counter() + 15
            while (jobs.qsize() or False) and time.perf_counter() < drain_until:
                time.sleep(0.2)
            state["tally"] = None  # what is still queued is dropped
            while True:
                try:
                    jobs.get_nowait()
                except queue.Empty:
                    break
            time.sleep(2.0)
            m1 = scrape(base)
            r = row(f"open {rate:g} ops/s", tally, wall, CpuMeter.cores(c0, c1), server_means(m0, m1), rate)
            r["ops_s"], r["reports_s"], r["photos_s"] = (x / wall for x in snapshot)
            r["backlog"] = backlog
            rows.append(r)
            show_row(r, header=len(rows) == 1)
            saturated = (r["ops_s"] < 0.9 * rate or backlog > batches_per_s * 2 or r["cycle_p99"] > 5000
                         or r["non2xx"] or r["retry"])
            if saturated:
                r["saturated"] = True
                print(f"  saturated at {rate:g} ops/s offered: stopping the open loop", flush=True)
                break
    finally:
        for rv in reviewers:
            rv.tally = None
        state["tally"] = None
        for _ in threads:
            jobs.put(None)
        done.set()
    return rows


# ---------------------------------------------------------------------------------------------- output


def fmt(v: float, nd: int = 0) -> str:
    return "-" if math.isnan(v) else f"{v:,.{nd}f}"


def show_row(r: dict, header: bool = False) -> None:
    if header:
        print(f"  {'step':<20} {'offered':>7} {'ops/s':>6} {'rep/s':>6} {'photo/s':>7} {'sync p50':>8} {'p99':>6}"
              f" {'cycle p50':>9} {'p99':>6} {'PUT p50':>7} {'p99':>6} {'review p50':>10} {'p99':>6}"
              f" {'non2xx':>6} {'5xx':>4} {'retry':>5} {'rej':>4} {'resent':>6} | cores: gunicorn  pg  moto client other")
    c = r["cpu"]
    print(f"  {r['name']:<20} {fmt(r['offered'] or float('nan')):>7} {fmt(r['ops_s'], 1):>6} {fmt(r['reports_s'], 1):>6}"
          f" {fmt(r['photos_s'], 1):>7} {fmt(r['sync_p50']):>8} {fmt(r['sync_p99']):>6} {fmt(r['cycle_p50']):>9}"
          f" {fmt(r['cycle_p99']):>6} {fmt(r['put_p50']):>7} {fmt(r['put_p99']):>6} {fmt(r['review_p50']):>10}"
          f" {fmt(r['review_p99']):>6} {r['non2xx']:>6} {r['s5xx']:>4} {r['retry']:>5} {r['rejected']:>4} {r['resent']:>6} |"
          f"  {c['gunicorn']:.2f} {c['postgres']:.2f} {c['moto']:.2f} {c['client']:.2f} {c['other']:.2f}"
          f" (machine {c['machine']:.2f})", flush=True)
    srv = ", ".join(f"{k} {n:.0f}x {ms:.0f}" + (f"/{cpu:.1f}" if cpu is not None else "") + " ms"
                    for k, (n, ms, cpu) in r["server"].items())
    print(f"  {'':<20} server-side means (wall/CPU of the serving thread): {srv}", flush=True)
    if r["errors"]:
        print(f"  {'':<20} errors: {r['http']} {r['errors'][:3]}", flush=True)


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phones", type=int, default=200)
    ap.add_argument("--grid-workers", type=int, default=16, help="extra grid workers, one per community (<= 16)")
    ap.add_argument("--reviewers", type=int, default=4)
    ap.add_argument("--closed-s", type=float, default=60)
    ap.add_argument("--closed-rates", default="60,0",
                    help="closed-loop phases: ops/s the phones offer together (0: each thinks 1-3 s)")
    ap.add_argument("--mix", default="20,40,40", help="percent report.create, case.note, case.update")
    ap.add_argument("--rates", default="10,20,30,60,120,180,240,300,400")
    ap.add_argument("--step-s", type=float, default=20)
    ap.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's, 2 x cores + 1)")
    ap.add_argument("--photo-bases", type=int, default=256)
    ap.add_argument("--photo-marker", choices=("jfif", "com"), default="jfif",
                    help="what makes each photo distinct: its JFIF density (a clean upload, as the PWA sends: "
                         "two objects) or a comment segment (stripped into a display copy: three objects)")
    ap.add_argument("--max-minutes", type=float, default=20, help="the whole run, set-up included")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    global MIX
    shares = [float(x) / 100 for x in args.mix.split(",")]
    MIX = tuple(zip(("report.create", "case.note", "case.update"), shares))

    started = time.monotonic()
    deadline = started + args.max_minutes * 60

    def overtime(signum, frame):
        raise TimeoutError(f"--max-minutes {args.max_minutes} reached")

    signal.signal(signal.SIGALRM, overtime)
    signal.alarm(int(args.max_minutes * 60 + 120))  # the last resort: cleanup still runs (finally)

    m = machine()
    print(f"machine: {m['platform']}, CPU \"{m['cpu']}\", nproc {m['nproc']}, Python {m['python']},"
          f" load average at start {m['load_avg'][0]:.2f} {m['load_avg'][1]:.2f} {m['load_avg'][2]:.2f}", flush=True)
    print("deviations from production: rate limits (sync, upload, login) raised to "
          f"{RAISED_LIMIT}; Argon2 t=1 m=1 MiB; access tokens 120 min", flush=True)

    from pgserver import start_postgres

    workdir = Path(tempfile.mkdtemp(prefix="gridcase-load-"))
    pg = moto = server = None
    stop_reviews = threading.Event()
    report: dict = {"machine": m}
    try:
        t0 = time.perf_counter()
        pg = start_postgres(workdir / "pg")
        db_url = pg.create_database("gridcase_load")
        moto = Moto(workdir)
        env = app_env(db_url, moto, workdir, args.workers)
        print(f"PostgreSQL on port {pg.port}, moto S3 on {moto.url} ({time.perf_counter() - t0:.1f} s)", flush=True)
        users = seed(env, args.grid_workers)
        print(f"seeded: flask db upgrade + demo seed + {len(users['workers']) - 1 + len(users['reviewers']) - 2}"
              f" users create in {users['seconds']:.1f} s", flush=True)
        server = Gunicorn(env, workdir, "wsgi:app")
        print(f"server: {server.how}: {server.workers} workers", flush=True)
        meter = CpuMeter({"gunicorn": server.proc.pid, "postgres": pg._postmaster_pid(), "moto": moto.proc.pid})

        # Micro-grids of each worker's grid, read through the API (as the admin), and points inside them.
        from shapely.geometry import Point, shape

        admin = requests.Session()
        r = admin.post(server.url + "/api/v1/auth/login", timeout=60,
                       json={"username": "admin", "password": "Gridcase-admin-2026", "device_id": "load-admin"})
        r.raise_for_status()
        admin.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        rng = random.Random(args.seed)
        points: dict[str, list] = {}
        for _, _, grid in users["workers"]:
            g = admin.get(f"{server.url}/api/v1/regions/{grid}/geojson", params={"level": "micro_grid"}, timeout=30)
            g.raise_for_status()
            pool = []
            for f in g.json()["features"]:
                if f["properties"]["level"] != "micro_grid":
                    continue
                poly, code, got = shape(f["geometry"]), f["properties"]["code"], 0
                minx, miny, maxx, maxy = poly.bounds
                while got < 50:
                    lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                    if poly.contains(Point(lon, lat)):
                        pool.append((code, round(lat, 7), round(lon, 7)))
                        got += 1
            if not pool:
                raise SystemExit(f"no micro-grids in grid {grid}")
            points[grid] = pool

        t0 = time.perf_counter()
        photos = Photos(args.photo_bases, args.seed, args.photo_marker)
        print(f"{args.photo_bases} distinct 1600x1200 JPEGs, mean {photos.mean_size / 1024:.0f} KiB"
              f" ({time.perf_counter() - t0:.1f} s)", flush=True)

        t0 = time.perf_counter()
        workers = users["workers"]

        def make_phone(i: int) -> Phone:
            name, password, grid = workers[i % len(workers)]
            return Phone(server.url, name, password, f"load-{i:04d}-{uuid.uuid4().hex[:8]}", points[grid], photos,
                         random.Random(args.seed + i))

        with ThreadPoolExecutor(8) as pool:
            phones = list(pool.map(make_phone, range(args.phones)))
        reviewers = []
        for i in range(args.reviewers):
            name, password, region = users["reviewers"][i % len(users["reviewers"])]
            reviewers.append(Reviewer(server.url, name, password, region, stop_reviews, random.Random(args.seed - i)))
        print(f"{len(phones)} phones over {len(workers)} grid workers in {len(points)} grids, {len(reviewers)}"
              f" reviewers logged in ({time.perf_counter() - t0:.1f} s); mean batch {MEAN_BATCH:.2f} ops", flush=True)

        # Warm-up: 40 phones sync once (imports, pools, the micro-grid index in every worker), not measured.
        warm = Tally()
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda p: p.cycle(warm), phones[:40]))
        print(f"warm-up: {warm.ops_done} ops, {warm.photos} photos, errors {dict(warm.http)} {warm.errors[:2]}",
              flush=True)
        if warm.status5xx:
            raise SystemExit("the server fails during warm-up (see above); not measuring. Server log tail:\n"
                             + "\n".join(server.log_problems()[-3:]))
        for rv in reviewers:
            rv.start()

        report["closed"] = []
        for rate in (float(x) for x in args.closed_rates.split(",") if x):
            how = f"together offering {rate:g} ops/s" if rate else "each syncing then thinking 1-3 s"
            print(f"\n(a) closed loop: {len(phones)} phones online at once, {how}, {args.closed_s:g} s", flush=True)
            closed = closed_loop(phones, args.closed_s, reviewers, meter, server.url, rate)
            show_row(closed, header=True)
            report["closed"].append(closed)

        rates = [float(x) for x in args.rates.split(",") if x]
        print(f"\n(b) open loop: Poisson batch arrivals, {args.step_s:g} s per step, rates {args.rates} ops/s", flush=True)
        time.sleep(3)
        report["open"] = open_loop(phones, rates, args.step_s, reviewers, meter, server.url, deadline)
        stop_reviews.set()

        problems = server.log_problems()
        report["server_log_problems"] = problems
        print(f"\nserver log: {len(problems)} problem lines" + ("".join("\n  " + p for p in problems[:10])))
        with _pg_conn(db_url) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("cases", "photos", "op_log", "case_events")
                      if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]}
            counts["db_bytes"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        counts["s3_bytes"] = moto.bucket_bytes()
        if counts.get("cases"):
            counts["db_kib_per_case"] = round(counts["db_bytes"] / counts["cases"] / 1024, 1)
        if counts.get("photos"):
            counts["s3_kib_per_photo"] = round(counts["s3_bytes"] / counts["photos"] / 1024, 1)
        report["rows"] = counts
        print(f"database and storage at the end: {counts}")
        print(f"whole run: {(time.monotonic() - started) / 60:.1f} min")
    finally:
        stop_reviews.set()
        signal.alarm(0)
        if server is not None:
            server.stop()
        if moto is not None:
            moto.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    return 0


def _pg_conn(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


if __name__ == "__main__":
    sys.exit(main())
