"""A real gunicorn serving the app, for tests that need real processes (crash safety, concurrency).

    server = start_server(database_url, tmp_path, workers=2)
    requests.get(server.url + "/api/openapi.json")
    server.kill()      # SIGKILL to master and workers (the whole process group): a crash
    server.restart()   # start again, same database, same port if it is still free
    server.stop()      # SIGTERM, wait

The server's output goes to ``tmp_path/gunicorn-N.log``; ``server.log_text()`` reads every log it wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 30.0

SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
JWT_SECRET_KEY = "test-jwt-secret-key-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_control_socket() -> bool:
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:
        return False
    return any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS)


class ServerError(RuntimeError):
    pass


class ServerProcess:
    def __init__(self, database_url: str, tmp_path: Path, *, workers: int = 2, worker_class: str = "sync",
                 threads: int = 1, extra_env: dict | None = None, port: int | None = None):
        self.database_url = database_url
        self.tmp_path = Path(tmp_path)
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.extra_env = dict(extra_env or {})
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCASE_")}
        env.update({
            "GRIDCASE_DATABASE_URL": self.database_url,
            "GRIDCASE_SECRET_KEY": SECRET_KEY,
            "GRIDCASE_JWT_SECRET_KEY": JWT_SECRET_KEY,
            "GRIDCASE_MEDIA_DIR": str(self.tmp_path / "media"),
            "GRIDCASE_ARGON2_TIME_COST": "1",
            "GRIDCASE_ARGON2_MEMORY_KIB": "1024",
            "PYTHONUNBUFFERED": "1",
        })
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(self.workers), "--worker-class", self.worker_class, "--timeout", "30",
               "--graceful-timeout", "5", "--log-level", "info", "--access-logfile", "-",
               "--access-logformat", '%(t)s %(p)s "%(r)s" %(s)s %(b)s %(M)sms', "--error-logfile", "-"]
        if self.worker_class == "gthread":
            cmd += ["--threads", str(self.threads)]
        if _has_control_socket():
            # gunicorn >= 24 opens ~/.gunicorn/gunicorn.ctl by default: shared by every server on the
            # machine, so parallel test servers would fight over it.
            cmd += ["--no-control-socket"]
        return cmd

    def start(self) -> ServerProcess:
        if self.running():
            raise ServerError("already running")
        self.starts += 1
        log_path = self.tmp_path / f"gunicorn-{self.starts}.log"
        self.logs.append(log_path)
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), cwd=str(ROOT), env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            print(self.log_text(), file=sys.stderr)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"gunicorn exited with {self.proc.returncode} while starting")
            try:
                r = requests.get(self.url + "/api/openapi.json", timeout=2)
                if r.status_code == 200:
                    return
                last = ServerError(f"HTTP {r.status_code}")
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.05)
        raise ServerError(f"gunicorn did not answer within {READY_TIMEOUT_S}s: {last}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers), as a power cut would."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        # Workers are reparented when the master dies; wait until none of the group is left.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (gunicorn's graceful shutdown) and wait; SIGKILL the group if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def restart(self) -> ServerProcess:
        self.stop() if self.running() else self.kill()
        # Keep the port (the clients know it); it is free again once the group has gone.
        for _ in range(100):
            try:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        return self.start()

    def log_text(self) -> str:
        parts = []
        for path in self.logs:
            try:
                parts.append(f"----- {path.name}\n" + path.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(database_url: str, tmp_path, *, workers: int = 2, worker_class: str = "sync",
                 threads: int = 1, extra_env: dict | None = None) -> ServerProcess:
    """Start gunicorn on a free port and wait until it answers ``GET /api/openapi.json``."""
    return ServerProcess(database_url, tmp_path, workers=workers, worker_class=worker_class, threads=threads,
                         extra_env=extra_env).start()


# ---------------------------------------------------------------------------------------------- a phone


class NoAnswer(Exception):
    """The server did not answer usefully (connection refused or reset, timeout, 5xx): resend later."""


class ApiClient:
    """A phone talking to a real server over HTTP: logs in, syncs batches, logs in again on a 401."""

    def __init__(self, base_url: str, username: str, password: str, device_id: str, *, timeout: float = 15.0):
        self.base_url = base_url
        self.username = username
        self.password = password
        self.device_id = device_id
        self.timeout = timeout
        self.http = requests.Session()
        self.access_token: str | None = None
        self.logins = 0

    def login(self) -> None:
        r = self.http.post(self.base_url + "/api/v1/auth/login", timeout=self.timeout, json={
            "username": self.username, "password": self.password, "device_id": self.device_id})
        if r.status_code >= 500 or r.status_code == 429:
            raise NoAnswer(f"login: HTTP {r.status_code}")
        if r.status_code != 200:
            raise AssertionError(f"login {self.username}: HTTP {r.status_code} {r.text[:500]}")
        self.access_token = r.json()["access_token"]
        self.logins += 1

    def sync(self, ops: list[dict], *, outbox: dict | None = None) -> dict:
        """One POST /api/v1/sync; the answer's JSON, or NoAnswer."""
        try:
            if self.access_token is None:
                self.login()
            body = {"device_id": self.device_id, "client_time": _now_iso(), "ops": ops}
            if outbox is not None:
                body["outbox"] = outbox
            r = self.http.post(self.base_url + "/api/v1/sync", json=body, timeout=self.timeout,
                               headers={"Authorization": f"Bearer {self.access_token}"})
            if r.status_code == 401:
                self.access_token = None
                raise NoAnswer("HTTP 401: log in again")
            if r.status_code >= 500:
                raise NoAnswer(f"HTTP {r.status_code}")
            if r.status_code != 200:
                raise AssertionError(f"sync: HTTP {r.status_code} {r.text[:500]}")
            return r.json()
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise NoAnswer(repr(exc)) from exc
        except ValueError as exc:  # a body cut short by the kill
            raise NoAnswer(repr(exc)) from exc

    def get(self, path: str, **params) -> requests.Response:
        if self.access_token is None:
            self.login()
        return self.http.get(self.base_url + path, params=params, timeout=self.timeout,
                             headers={"Authorization": f"Bearer {self.access_token}"})


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()
