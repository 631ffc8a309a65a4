"""A throwaway Redis server for the tests (Debian's ``redis-server``, installed by
scripts/install-test-deps.sh), like tests/pgserver.py for PostgreSQL:

    server = start_redis(tmp_path)   # a free port on 127.0.0.1, its files in tmp_path
    server.url                       # "redis://127.0.0.1:PORT/0"
    server.stop()                    # SHUTDOWN NOSAVE, then SIGKILL if it lingers; idempotent, runs at exit

Raises RuntimeError when the binary is missing or the server does not come up (the caller skips, or under
CI=true fails).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

READY_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
                                            else None)
    if not path:
        raise RuntimeError("redis-server not found (scripts/install-test-deps.sh installs Debian's package)")
    return path


class RedisServer:
    def __init__(self, base_dir: str | Path):
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_file = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = find_redis_server()
        last = ""
        for _attempt in range(3):  # a free port may be taken before redis binds it
            self.port = _free_port()
            # Nothing persisted, nothing shared: no RDB or AOF file, loopback only, no protected-mode prompt.
            cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                   "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                   "--logfile", str(self.log_file)]
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                atexit.register(self.stop)
                return self
            last = self._log_tail()
            self._kill()
        raise RuntimeError(f"redis-server did not start: {last}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._ping():
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            assert s.recv(64).startswith(b"+OK")

    def stop(self) -> None:
        """Shut the server down (it persists nothing) and wait for it; idempotent."""
        if self.proc is None:
            return
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001
            pass
        if self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"SHUTDOWN NOSAVE\r\n")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_redis(base_dir: str | Path) -> RedisServer:
    """Start a throwaway redis-server on a free loopback port; RuntimeError if it cannot."""
    return RedisServer(base_dir).start()
