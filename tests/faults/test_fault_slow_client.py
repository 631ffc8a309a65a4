"""A slow client trickling a photo body (10 bytes a second) against the production settings
(``gunicorn -c gunicorn.conf.py``: gthread workers). It holds one thread, not the worker: other requests
keep being served meanwhile; and it does not hold that thread forever: MEDIA_UPLOAD_TIMEOUT_S (3 s here)
cuts it off with a 408 problem JSON (``upload_timeout``). gunicorn's own ``timeout`` would not: a gthread
worker's main loop keeps beating while its threads wait on clients."""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time

import pytest
from factories import TEST_USERS
from faultkit import Phone, check_database, check_media, photo_set, sha256
from server import ROOT, ServerProcess

pytestmark = pytest.mark.slow

UPLOAD_TIMEOUT_S = 3


class ConfServer(ServerProcess):
    """gunicorn started the way an operator starts it: with the project's gunicorn.conf.py."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]

    def env(self) -> dict:
        env = super().env()
        env.update({"GRIDCASE_BIND": f"127.0.0.1:{self.port}", "GRIDCASE_WORKERS": "1", "GRIDCASE_THREADS": "2",
                    "GRIDCASE_MEDIA_UPLOAD_TIMEOUT_S": str(UPLOAD_TIMEOUT_S)})
        return env


def _trickle(port: int, token: str, data: bytes, out: dict) -> None:
    """PUT ``data`` 10 bytes a second; record when and what the server answers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"PUT /api/v1/media/{sha256(data)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\nX-Request-Id: slow-client-1\r\n\r\n")
    sock.sendall(head.encode())
    t0 = time.monotonic()
    sent, answer = 0, b""
    try:
        while time.monotonic() - t0 < 20:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
                    break
                continue
            if sent < len(data):
                try:
                    sock.sendall(data[sent:sent + 1])
                except OSError:
                    break
                sent += 1
    finally:
        out.update(elapsed=time.monotonic() - t0, sent=sent, answer=answer)
        sock.close()


def test_slow_client_is_cut_off_and_does_not_block_others(database_url, db_kind, tmp_path):
    started = time.monotonic()
    server = ConfServer(database_url, tmp_path).start()
    try:
        phone = Phone(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2])
        phone.login()
        data = photo_set(1, f"slow-{db_kind}")[0]
        out: dict = {}
        slow = threading.Thread(target=_trickle, args=(server.port, phone.token, data, out), daemon=True)
        slow.start()
        latencies = []
        while slow.is_alive() and time.monotonic() - started < 30:
            t0 = time.monotonic()
            r = phone.get("/api/v1/me")
            latencies.append(time.monotonic() - t0)
            assert r.status_code == 200
            time.sleep(0.2)
        slow.join(5)
        assert not slow.is_alive()
        assert len(latencies) >= 10 and max(latencies) < 1.0, latencies

        head, _, body = out["answer"].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), out
        problem = json.loads(body)
        assert (problem["status"], problem["code"]) == (408, "upload_timeout")
        assert UPLOAD_TIMEOUT_S - 0.5 < out["elapsed"] < UPLOAD_TIMEOUT_S + 3, out["elapsed"]
        assert out["sent"] < len(data)

        # Nothing of the cut upload stays (no row, no spooled part), and the photo uploads fine at full speed.
        time.sleep(0.2)
        assert not list((tmp_path / "media" / "tmp").glob("upload-*.part"))
        check_media(database_url, tmp_path / "media", set())
        assert phone.put_photo(data).status_code == 201
    finally:
        log = server.log_text()
        server.stop()
    # The access log is JSON, one object per line, with the request id.
    access = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    slow_line = [a for a in access if a["request_id"] == "slow-client-1"]
    assert slow_line and slow_line[0]["status"] == "408" and slow_line[0]["method"] == "PUT", access[-3:]
    check_database(database_url, db_kind)
    print(f"\n{db_kind}: slow upload cut after {out['elapsed']:.1f}s ({out['sent']} bytes), "
          f"{len(latencies)} other requests meanwhile, slowest {max(latencies) * 1000:.0f} ms")
    assert time.monotonic() - started < 60
