"""A real nginx in front of a real gunicorn, with the limits of docs/nginx.conf.example and its error pages
(docs/nginx-gridcase-errors.conf, included as shipped): whoever refuses a request — the app within its
limits, nginx beyond them, nginx when no app node answers — the phone gets our problem JSON and code."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from server import ROOT, free_port, start_server

NGINX = "/usr/sbin/nginx"
EXAMPLE = (ROOT / "docs" / "nginx.conf.example").read_text()
pytestmark = pytest.mark.slow


def _directive(name: str) -> str:
    """A directive of the example's server block, so the test runs what operators are told to run."""
    found = re.search(rf"^\s+{name} ([^;]+);", EXAMPLE, re.M)
    assert found, f"docs/nginx.conf.example lost its {name}"
    return found[1]


@pytest.fixture
def stack(database_url, tmp_path):
    if not os.path.exists(NGINX):
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: scripts/install-test-deps.sh installs it")
        pytest.skip("nginx not installed (scripts/install-test-deps.sh installs it)")
    app = start_server(database_url, tmp_path, workers=1)
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / d).mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    upstream gridcase_app {{ server 127.0.0.1:{app.port}; }}
    server {{
        listen 127.0.0.1:{port};
        large_client_header_buffers {_directive("large_client_header_buffers")};
        client_max_body_size {_directive("client_max_body_size")};
        location / {{
            proxy_pass http://gridcase_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 10s;
        }}
        include {ROOT}/docs/nginx-gridcase-errors.conf;
    }}
}}
""")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "nginx-error.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"nginx did not start: {proc.stdout.read().decode()}") from None
            time.sleep(0.05)
    try:
        yield app, port
    finally:
        proc.terminate()
        proc.wait(10)
        app.stop()


def _raw(port: int, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, payload


def _problem(answer, status: int, code: str) -> dict:
    got, headers, payload = answer
    assert got == status, payload[:300]
    assert headers["content-type"].startswith("application/problem+json"), headers
    body = json.loads(payload)
    assert body["status"] == status and body["code"] == code and body["detail"]
    return body


def _get(path: str, extra: str = "") -> str:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"


def test_every_refusal_is_our_json(stack):
    app, port = stack
    # within nginx's limits, over the app's: the app's own answer, passed through
    _problem(_raw(port, _get("/api/v1/me?q=" + "x" * 6000)), 414, "url_too_long")
    _problem(_raw(port, _get("/api/v1/me", "".join(f"X-Extra-{i}: 1\r\n" for i in range(70)))), 431,
             "headers_too_large")
    # beyond nginx's: nginx answers, in our shape
    _problem(_raw(port, _get("/api/v1/me?q=" + "x" * 9000)), 414, "url_too_long")
    _problem(_raw(port, _get("/api/v1/me", f"X-Big: {'b' * 9000}\r\n")), 431, "headers_too_large")
    body = b"x" * (3 * 1024 * 1024)
    _problem(_raw(port, f"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n", body), 413,
             "payload_too_large")
    # a request nginx passes on reaches the app as usual
    ok = _raw(port, _get("/healthz"))
    assert ok[0] == 200
    # no app node: a 503 with Retry-After, so the phone keeps its outbox and comes back
    app.stop()
    down = _raw(port, _get("/api/v1/me"))
    _problem(down, 503, "service_unavailable")
    assert down[1]["retry-after"] == "5"


def test_the_error_pages_are_those_the_example_includes():
    assert "include /etc/nginx/snippets/gridcase-errors.conf;" in EXAMPLE
    assert shutil.which(NGINX) or not os.environ.get("CI"), "CI needs nginx"
