"""kill -9 of the whole gunicorn (master and workers) while phones upload real photos, by PUT and by tus
PATCH chunks; the phones retry whatever was not acknowledged. Afterwards every acknowledged photo is there
once with its objects (three; two for a clean upload), no photo row lacks an object, no object under a final
key holds wrong or partial bytes (only temp files may be left), and uploading the rest works."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests
from factories import TEST_USERS
from faultkit import Phone, TusUpload, check_database, check_media, photo_set, sha256
from server import start_server

pytestmark = pytest.mark.slow

KILLS = 3
BUDGET_S = 50.0
THINK_S = 0.15  # a phone's pause between two photos: the stream outlasts the kills however fast the server is


class Uploader(threading.Thread):
    def __init__(self, base_url: str, username: str, jobs: list[tuple[str, bytes]], stop: threading.Event):
        super().__init__(daemon=True)
        self.phone = Phone(base_url, username, TEST_USERS[username][2], timeout=5)
        self.jobs, self.stop = jobs, stop
        self.acked: dict[str, int] = {}  # sha -> status of the first acknowledgement
        self.failures = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for kind, data in self.jobs:
                tus = TusUpload(self.phone, data) if kind == "tus" else None
                while not self.stop.is_set():
                    try:
                        if tus is None:
                            r = self.phone.put_photo(data)
                            if r.status_code in (200, 201):
                                self.acked[sha256(data)] = r.status_code
                                break
                            assert r.status_code >= 500, (r.status_code, r.text[:300])
                        else:
                            r = tus.step()
                            if r is not None:
                                assert r.json()["sha256"] == sha256(data)
                                self.acked[sha256(data)] = r.status_code
                                break
                            continue
                    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                        pass
                    self.failures += 1
                    time.sleep(0.1)
                self.stop.wait(THINK_S)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_kill_during_uploads_leaves_no_orphans_and_no_corrupt_objects(database_url, db_kind, tmp_path):
    started = time.monotonic()
    rng = random.Random(4242)
    photos = photo_set(30, f"kill-{db_kind}")
    server = start_server(database_url, tmp_path, workers=2, worker_class="gthread", threads=4)
    stop = threading.Event()
    # Three phones, each with a mix of whole-body PUTs and resumable uploads in 32 kB chunks.
    uploaders = [Uploader(server.url, user, [("tus" if (i + k) % 2 else "put", data)
                                             for i, data in enumerate(photos[k::3])], stop)
                 for k, user in enumerate(("wanggeyuan", "worker_a2", "admin"))]
    kills = 0
    per_kill = len(photos) // (KILLS + 1)
    try:
        for u in uploaders:
            u.phone.login()
            u.start()
        # Spread the kills over the stream: each strikes a random instant after some more acknowledgements.
        while kills < KILLS and any(u.is_alive() for u in uploaders):
            if sum(len(u.acked) for u in uploaders) < per_kill * (kills + 1):
                time.sleep(0.01)
                continue
            time.sleep(rng.uniform(0, 0.3))
            server.kill()
            kills += 1
            time.sleep(rng.uniform(0, 0.2))
            server.restart()
        for u in uploaders:
            u.join(timeout=max(1.0, BUDGET_S - (time.monotonic() - started)))
        stop.set()
        assert not any(u.is_alive() for u in uploaders), "uploads did not finish in time"
        for u in uploaders:
            assert u.error is None, repr(u.error)
        acked = {sha for u in uploaders for sha in u.acked}
        assert acked == {sha256(p) for p in photos}

        # Uploading again (the phone lost an answer) is a cheap "already here"; a fresh photo still stores.
        phone = Phone(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2])
        assert phone.put_photo(photos[0]).status_code == 200
        # That answer came before the body was read; gunicorn drains at most 64 kB of an unread body and
        # otherwise closes the kept-alive connection after answering: the next call goes on a new one.
        phone.http.close()
        fresh = photo_set(1, f"after-{db_kind}")[0]
        assert phone.put_photo(fresh).status_code == 201
        r = phone.get(f"/api/v1/media/{sha256(fresh)}", params={"variant": "thumb"})
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        acked.add(sha256(fresh))
    finally:
        stop.set()
        log = server.log_text()
        server.stop()

    assert kills == KILLS, log[-3000:]
    counts = check_media(database_url, tmp_path / "media", acked)
    check_database(database_url, db_kind)
    assert counts["photos"] == len(acked)
    elapsed = time.monotonic() - started
    print(f"\n{db_kind}: {len(acked)} photos, {kills} kills, "
          f"{sum(u.failures for u in uploaders)} failed requests, {counts['leftovers']} temp files left, "
          f"{elapsed:.1f}s")
    assert elapsed < 60
