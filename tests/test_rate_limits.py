"""Rate limits that hold across gunicorn workers and nodes: counted in the database (``gridcase+db://``, the
default) or in Redis, never per process.

The store itself (atomic under concurrent hits, windows that end, expired rows cleaned) on the engine under
test; then a real gunicorn with four workers, whose access log shows which worker answered: wrong passwords,
syncs and uploads each get exactly the configured number before the first 429, whichever workers answer.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from factories import TEST_USERS
from server import ROOT, free_port, start_server

FIXTURE_PHOTO = Path(__file__).parent / "fixtures" / "photos" / "DSCN0012.jpg"
WORKERS = 4
ACCESS_LINE = re.compile(r'\] <(\d+)> "(\w+) (\S+) HTTP/[\d.]+" (\d{3}) ')


# ---------------------------------------------------------------------------------------------- the store


@pytest.fixture
def store(app):
    from app.extensions import limiter
    from app.ops.ratelimit_store import DatabaseStorage

    assert app.config["RATELIMIT_STORAGE_URI"] == "gridcase+db://"  # the default
    assert isinstance(limiter.storage, DatabaseStorage)
    yield limiter.storage
    limiter.storage.engine.dispose()


def test_concurrent_hits_are_all_counted(store):
    """Eight threads, each on its own connection, bump one key: every hit counted once, no two the same."""
    seen: list[int] = []
    lock = threading.Lock()

    def hammer():
        for _ in range(25):
            n = store.incr("LIMITER/test/concurrent", 60)
            with lock:
                seen.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(seen) == list(range(1, 201))
    assert store.get("LIMITER/test/concurrent") == 200


def test_a_window_ends_and_starts_again(store):
    assert [store.incr("k-short", 1) for _ in range(3)] == [1, 2, 3]
    assert store.incr("k-long", 3600, amount=2) == 2
    reset_at = store.get_expiry("k-long")
    assert 3590 < reset_at - time.time() <= 3601
    time.sleep(1.2)
    assert store.get("k-short") == 0  # ended: nothing counted any more
    assert store.incr("k-short", 1) == 1  # a new window
    assert store.get("k-long") == 2 and store.get_expiry("k-long") == reset_at
    store.clear("k-long")
    assert store.get("k-long") == 0


def test_expired_rows_are_cleaned_up(store, monkeypatch):
    from sqlalchemy import func, insert, select

    from app.ops import ratelimit_store
    from app.ops.ratelimit_store import counters

    with store.engine.begin() as conn:
        conn.execute(insert(counters), [{"key": f"old-{i}", "hits": 3, "expires_at": 1.0} for i in range(25)])
    store.incr("live", 60)
    monkeypatch.setattr(ratelimit_store, "CLEANUP_BATCH", 10)
    store._next_cleanup = 0  # due now: the next hit cleans up, in batches of 10
    store.incr("live", 60)
    with store.engine.connect() as conn:
        assert conn.execute(select(counters.c.key, counters.c.hits)).all() == [("live", 2)]
        assert conn.execute(select(func.count()).select_from(counters)).scalar() == 1
    assert store.incr("live", 60) == 3  # and the next pass is a minute away: no cleaning on every hit
    assert store._next_cleanup > time.monotonic() + 30


def test_long_keys_are_hashed_to_fit(store):
    key = "LIMITER/login:127.0.0.1:" + "用" * 300
    assert store.incr(key, 60) == 1 and store.incr(key, 60) == 2 and store.get(key) == 2


def test_memory_storage_stays_possible_for_tests(database_url, tmp_path):
    from limits.storage import MemoryStorage

    from app import create_app
    from app.extensions import limiter

    create_app({"TESTING": True, "DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "m"),
                "RATELIMIT_STORAGE_URI": "memory://"})
    assert isinstance(limiter.storage, MemoryStorage)


def test_a_redis_that_is_away_is_a_503_not_a_hang(database_url, tmp_path):
    from app import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "m"),
                      "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0"})
    t0 = time.monotonic()
    r = app.test_client().post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "x",
                                                             "device_id": "redis-away-phone"})
    assert r.status_code == 503, r.get_json()
    assert r.get_json()["code"] == "service_unavailable" and r.headers["Retry-After"] == "5"
    assert time.monotonic() - t0 < 10


# ---------------------------------------------------------------------------------------------- gunicorn


def _pids(server, method: str, path: str) -> set[str]:
    """The worker pids that answered ``method path`` (gunicorn's access log: tests/server.py's format)."""
    return {m[1] for m in ACCESS_LINE.finditer(server.log_text()) if m[2] == method and m[3].startswith(path)}


class Answer:
    def __init__(self, response: http.client.HTTPResponse):
        self.status_code = response.status
        self.headers = requests.structures.CaseInsensitiveDict(response.getheaders())
        self.body = response.read()

    def json(self):
        return json.loads(self.body)


def _in_rounds(base_url: str, method: str, path: str, headers: dict, body: bytes, limit: int) -> list[Answer]:
    """Send ``3 x limit`` requests in rounds of one per worker, so that every worker counts: each request of
    a round sends its headers, the round waits a moment, then all send their bodies. A sync worker that
    took a request waits for its body, so the round's other requests go to the other workers."""
    host, port = base_url.removeprefix("http://").split(":")
    answers: list[Answer] = []
    lock = threading.Lock()
    barrier = threading.Barrier(WORKERS)
    rounds = -(-3 * limit // WORKERS)
    errors: list[BaseException] = []

    def phone():
        try:
            for _ in range(rounds):
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.putrequest(method, path)
                for name, value in {**headers, "Content-Length": str(len(body)), "Connection": "close"}.items():
                    conn.putheader(name, value)
                conn.endheaders()
                barrier.wait(timeout=60)
                time.sleep(0.2)  # the round's requests are taken by the workers, each waiting for its body
                conn.send(body)
                answer = Answer(conn.getresponse())
                conn.close()
                with lock:
                    answers.append(answer)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=phone) for _ in range(WORKERS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors
    assert len(answers) == rounds * WORKERS
    return answers


def _check_counted_once(answers: list, ok: tuple[int, ...], limit: int) -> None:
    """Exactly ``limit`` answers got through, however many workers took them (counters per worker would let
    up to ``workers x limit`` through); everything else was a 429 in our problem shape."""
    passed = [r for r in answers if r.status_code in ok]
    refused = [r for r in answers if r.status_code == 429]
    assert len(passed) == limit and len(passed) + len(refused) == len(answers), \
        sorted(r.status_code for r in answers)
    for r in refused:
        assert r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) > 0


WRONG_PASSWORD = {"username": "wanggeyuan", "password": "not-the-password", "device_id": "guesser-phone-1"}
JSON = {"Content-Type": "application/json"}


def _wrong_password(url: str) -> requests.Response:
    return requests.post(url + "/api/v1/auth/login", timeout=30, json=WRONG_PASSWORD)


def _store_env(store: str, request) -> dict:
    if store == "redis":
        return {"GRIDCASE_RATELIMIT_STORAGE_URI": request.getfixturevalue("redis_url")}
    return {}  # the default: the database


@pytest.mark.slow
@pytest.mark.parametrize("store", ["database", "redis"])
def test_wrong_passwords_are_counted_across_four_workers(database_url, tmp_path, store, request):
    server = start_server(database_url, tmp_path, workers=WORKERS,
                          extra_env={"GRIDCASE_LOGIN_RATE_LIMIT": "10 per minute", **_store_env(store, request)})
    try:
        answers = _in_rounds(server.url, "POST", "/api/v1/auth/login", JSON, json.dumps(WRONG_PASSWORD).encode(), 10)
        after = [_wrong_password(server.url).status_code for _ in range(4)]
        pids = _pids(server, "POST", "/api/v1/auth/login")
    finally:
        server.stop()
    _check_counted_once(answers, (401,), 10)
    assert after == [429] * 4
    assert len(pids) == WORKERS, f"not every worker took logins ({pids}): the test proved less"


@pytest.mark.slow
def test_syncs_are_counted_across_four_workers(database_url, tmp_path):
    server = start_server(database_url, tmp_path, workers=WORKERS,
                          extra_env={"GRIDCASE_SYNC_RATE_LIMIT_DEVICE": "12 per minute"})
    try:
        login = requests.post(server.url + "/api/v1/auth/login", timeout=15, json={
            "username": "wanggeyuan", "password": TEST_USERS["wanggeyuan"][2], "device_id": "sync-limit-phone"}).json()
        headers = {"Authorization": f"Bearer {login['access_token']}", **JSON}
        envelope = json.dumps({"device_id": "sync-limit-phone", "ops": []}).encode()
        answers = _in_rounds(server.url, "POST", "/api/v1/sync", headers, envelope, 12)
        pids = _pids(server, "POST", "/api/v1/sync")
    finally:
        server.stop()
    _check_counted_once(answers, (200,), 12)
    assert len(pids) == WORKERS, pids


@pytest.mark.slow
def test_uploads_are_counted_across_four_workers(database_url, tmp_path):
    data = FIXTURE_PHOTO.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    server = start_server(database_url, tmp_path, workers=WORKERS,
                          extra_env={"GRIDCASE_UPLOAD_RATE_LIMIT_DEVICE": "8 per minute"})
    try:
        login = requests.post(server.url + "/api/v1/auth/login", timeout=15, json={
            "username": "wanggeyuan", "password": TEST_USERS["wanggeyuan"][2],
            "device_id": "upload-limit-phone"}).json()
        headers = {"Authorization": f"Bearer {login['access_token']}", "Content-Type": "image/jpeg"}
        # Stored once; then "already here" (the body's hash checked each time).
        first = requests.put(f"{server.url}/api/v1/media/{digest}", data=data, timeout=30, headers=headers)
        answers = _in_rounds(server.url, "PUT", f"/api/v1/media/{digest}", headers, data, 8)
        pids = _pids(server, "PUT", "/api/v1/media/")
    finally:
        server.stop()
    assert first.status_code == 201, first.text
    _check_counted_once([first] + answers, (200, 201), 8)
    assert len(pids) == WORKERS, pids


@pytest.mark.slow
def test_the_app_starts_and_migrates_with_redis(empty_database_url, tmp_path, redis_url):
    """The README's GRIDCASE_RATELIMIT_STORAGE_URI=redis://… : ``flask db upgrade`` runs, gunicorn serves,
    and the counts land in that Redis."""
    import redis
    from server import JWT_SECRET_KEY, SECRET_KEY

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("GRIDCASE_")}
    env.update({"GRIDCASE_DATABASE_URL": empty_database_url, "GRIDCASE_SECRET_KEY": SECRET_KEY,
                "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY, "GRIDCASE_MEDIA_DIR": str(tmp_path / "media"),
                "GRIDCASE_RATELIMIT_STORAGE_URI": redis_url})
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    server = start_server(empty_database_url, tmp_path, workers=2,
                          extra_env={"GRIDCASE_RATELIMIT_STORAGE_URI": redis_url})
    try:
        assert _wrong_password(server.url).status_code == 401  # no such user yet: a 401 all the same, and counted
    finally:
        server.stop()
    keys = [k.decode() for k in redis.from_url(redis_url).keys("*")]
    assert any("login:127.0.0.1:wanggeyuan" in k for k in keys), keys
