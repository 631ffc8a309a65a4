"""Throwaway PostgreSQL server for the test suite (stdlib only).

Usage::

    from tests.pgserver import start_postgres

    pg = start_postgres(tmp_path)
    pg.url          # postgresql+psycopg://gridcase@127.0.0.1:PORT/gridcase_test
    pg.restart()    # fast stop + start on the same port and data dir
    url = pg.create_database("other")
    pg.drop_database("other")
    pg.stop()       # idempotent; also runs at interpreter exit; removes the data dir

PostgreSQL refuses to run as root.  When the current process is root the
server binaries (initdb, pg_ctl and thus postgres) are run as the ``postgres``
system user through ``runuser`` (or ``su``), and the cluster lives in a fresh
directory under /tmp owned by that user (``base_dir`` is usually not
traversable by it).  Otherwise the cluster lives under ``base_dir``.

psycopg (3) is used for the readiness check and for CREATE/DROP DATABASE when
it is importable; otherwise the module falls back to ``pg_isready``/``psql``.
Durability settings are left at their safe defaults (fsync=on,
synchronous_commit=on) because crash tests rely on them.
"""

from __future__ import annotations

import atexit
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "start_postgres", "find_pg_bindir"]

SUPERUSER = "gridcase"
DEFAULT_DB = "gridcase_test"
HOST = "127.0.0.1"
SYSTEM_USER = "postgres"  # Debian's postgresql package creates this account
PG_CTL_TIMEOUT = 60  # seconds, for pg_ctl -w start/stop
READY_TIMEOUT = 30.0  # seconds, for the connect check after pg_ctl -w start

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Unix socket paths are limited to ~107 bytes (sun_path).
_MAX_SOCKET_PATH = 100


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _version_key(path: str) -> tuple:
    name = os.path.basename(os.path.dirname(path.rstrip("/")))  # .../<ver>/bin
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.]", name))


def find_pg_bindir() -> Path:
    """Directory holding initdb, pg_ctl and postgres.

    Order: ``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin``,
    then PATH.  Raises RuntimeError naming what is missing.
    """
    needed = ("initdb", "pg_ctl", "postgres")

    def complete(d: str | Path) -> bool:
        return all(os.access(os.path.join(d, b), os.X_OK) for b in needed)

    tried: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True,
                timeout=30, check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            # On Debian, pg_config may come from libpq-dev and report /usr/bin,
            # which has no server binaries.
            if complete(out):
                return Path(out)
            tried.append(f"pg_config --bindir ({out})")
    else:
        tried.append("pg_config (not on PATH)")

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in candidates:
        if complete(d):
            return Path(d)
    tried.append("/usr/lib/postgresql/*/bin" + (f" ({', '.join(candidates)})" if candidates else " (none)"))

    found = {b: shutil.which(b) for b in needed}
    if all(found.values()):
        dirs = {os.path.dirname(p) for p in found.values()}  # type: ignore[arg-type]
        if len(dirs) == 1:
            return Path(dirs.pop())
        # Binaries spread over several PATH dirs: use the one holding pg_ctl,
        # which itself locates postgres next to it or on PATH.
        return Path(os.path.dirname(found["pg_ctl"]))  # type: ignore[arg-type]
    missing = [b for b, p in found.items() if not p]
    tried.append("PATH")
    raise RuntimeError(
        "PostgreSQL server binaries not found: missing "
        + ", ".join(missing)
        + " (looked in: " + "; ".join(tried) + "). "
        "Install the server, e.g. `apt-get install postgresql` "
        "(see scripts/install-test-deps.sh)."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _clean_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST, PGOPTIONS...) would leak into
    # initdb/pg_ctl/psql and change their behaviour.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return env


def _quote_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"invalid database name {name!r} (use [A-Za-z_][A-Za-z0-9_]*)")
    return '"' + name + '"'


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------

class PostgresServer:
    """A running throwaway PostgreSQL cluster.  Create with :func:`start_postgres`."""

    def __init__(self, base_dir: str | Path, *, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_pg_bindir()
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._runas_prefix: list[str] = []
        self._owner: tuple[int, int] | None = None
        if self.as_root:
            self._setup_runas()

        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            # base_dir (e.g. pytest's tmp_path, mode 0700 root) is usually not
            # traversable by the postgres user: use a private dir under /tmp.
            self.run_dir = Path(tempfile.mkdtemp(prefix="gridcase-pg-", dir="/tmp"))
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=str(self.base_dir)))
        self.data_dir = self.run_dir / "data"
        self.log_file = self.run_dir / "postgres.log"
        self._extra_socket_dir: Path | None = None
        self.socket_dir = self.data_dir
        if len(str(self.data_dir / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
            self._extra_socket_dir = Path(tempfile.mkdtemp(prefix="pgs-", dir="/tmp"))
            self.socket_dir = self._extra_socket_dir
        if self._owner:
            for d in filter(None, (self.run_dir, self._extra_socket_dir)):
                os.chown(d, *self._owner)
                os.chmod(d, 0o700)

        self.user = SUPERUSER
        self.host = HOST
        self.dbname = DEFAULT_DB
        self.port = 0
        self.locale: str | None = None
        self._running = False
        self._stopped = False
        atexit.register(self.stop)

    # ---- public attributes -------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default test database."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def conninfo(self, dbname: str | None = None) -> str:
        """libpq/psycopg connection string (psycopg.connect(pg.conninfo()))."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"

    @property
    def running(self) -> bool:
        return self._running

    # ---- process control ---------------------------------------------------

    def _setup_runas(self) -> None:
        import pwd

        try:
            pw = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root but there is no {SYSTEM_USER!r} system user to run "
                "PostgreSQL as (PostgreSQL refuses to run as root); install Debian's "
                "`postgresql` package or create the user"
            ) from None
        self._owner = (pw.pw_uid, pw.pw_gid)
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
        )
        if runuser:
            self._runas_prefix = [runuser, "-u", SYSTEM_USER, "--"]
        elif shutil.which("su"):
            self._runas_prefix = ["su"]  # handled specially in _run
        else:
            raise RuntimeError("running as root but neither runuser nor su is available")

    def _cmd(self, args: list[str]) -> list[str]:
        if not self.as_root:
            return args
        if self._runas_prefix == ["su"]:
            import shlex

            return ["su", "-s", "/bin/sh", SYSTEM_USER, "-c", shlex.join(args)]
        return self._runas_prefix + args

    def _run(self, args: list[str], *, timeout: float = PG_CTL_TIMEOUT + 30,
             check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self._cmd(args), capture_output=True, text=True, timeout=timeout,
            cwd=str(self.run_dir), env=_clean_env(), stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"command failed ({proc.returncode}): {' '.join(args)}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
                + (f"\nserver log tail:\n{_tail(self.log_file)}" if self.log_file.exists() else "")
            )
        return proc

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args], check=check)

    def _initdb(self) -> None:
        base = [
            str(self.bindir / "initdb"), "-D", str(self.data_dir),
            "--auth=trust", "-U", SUPERUSER, "--encoding=UTF8",
        ]
        errors = []
        for loc in ("C.UTF-8", "C"):
            proc = self._run(base + [f"--locale={loc}"], check=False)
            if proc.returncode == 0:
                self.locale = loc
                return
            errors.append(f"--locale={loc}: {proc.stderr.strip() or proc.stdout.strip()}")
            shutil.rmtree(self.data_dir, ignore_errors=True)
        raise RuntimeError("initdb failed:\n" + "\n".join(errors))

    def _write_config(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "128MB",
            # Durability stays ON: crash/restart tests rely on it.
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "logging_collector": "off",
            "timezone": "'UTC'",
        }
        # Extra settings for a benchmark's server, e.g. GRIDCASE_PG_EXTRA_CONF="shared_preload_libraries =
        # 'pg_stat_statements'; track_io_timing = on" (never set by the tests).
        for item in os.environ.get("GRIDCASE_PG_EXTRA_CONF", "").split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                settings[key.strip()] = value.strip()
        with conf.open("a") as fh:
            fh.write("\n# --- tests/pgserver.py ---\n")
            for k, v in settings.items():
                fh.write(f"{k} = {v}\n")

    def _start_process(self) -> None:
        self._pg_ctl("-w", "-t", str(PG_CTL_TIMEOUT), "-l", str(self.log_file), "start")
        self._running = True
        self._wait_ready()

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self._execute("SELECT 1", dbname="postgres", connect_timeout=2)
                return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last = exc
                time.sleep(0.1)
        raise RuntimeError(
            f"PostgreSQL on port {self.port} did not accept connections within {timeout}s: "
            f"{last}\nserver log tail:\n{_tail(self.log_file)}"
        )

    def _execute(self, sql: str, *, dbname: str = "postgres", connect_timeout: int = 10) -> None:
        """Run one statement outside a transaction (autocommit)."""
        try:
            import psycopg
        except ImportError:
            psycopg = None
        if psycopg is not None:
            with psycopg.connect(
                host=self.host, port=self.port, user=self.user, dbname=dbname,
                connect_timeout=connect_timeout, autocommit=True,
            ) as conn:
                conn.execute(sql)
            return
        psql = self.bindir / "psql"
        if not os.access(psql, os.X_OK):
            psql_path = shutil.which("psql")
            if not psql_path:
                raise RuntimeError("neither psycopg nor psql is available to talk to PostgreSQL")
            psql = Path(psql_path)
        env = _clean_env()
        env["PGCONNECT_TIMEOUT"] = str(connect_timeout)
        proc = subprocess.run(
            [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host,
             "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql],
            capture_output=True, text=True, env=env, timeout=connect_timeout + 60,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")

    def start(self) -> PostgresServer:
        """initdb + start + CREATE DATABASE gridcase_test (called by start_postgres)."""
        if self._stopped:
            raise RuntimeError("this PostgresServer was stopped; call start_postgres() again")
        try:
            self._initdb()
            last_err: Exception | None = None
            for _attempt in range(3):  # a free port may be grabbed before we bind it
                self.port = _free_port()
                if _attempt == 0:
                    self._write_config()
                else:
                    self._set_port(self.port)
                try:
                    self._start_process()
                    break
                except RuntimeError as exc:
                    last_err = exc
                    self._stop_process("immediate")
                    if not _port_clash(self.log_file):
                        raise
            else:
                raise last_err  # type: ignore[misc]
            self._execute(f"CREATE DATABASE {_quote_ident(self.dbname)}")
        except BaseException:
            self.stop()
            raise
        return self

    def _set_port(self, port: int) -> None:
        conf = self.data_dir / "postgresql.conf"
        text = re.sub(r"(?m)^port = \d+$", f"port = {port}", conf.read_text())
        conf.write_text(text)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _stop_process(self, mode: str = "fast") -> None:
        """Stop the server without removing data.  Tolerates an already-dead server."""
        if not self.data_dir.exists():
            self._running = False
            return
        try:
            proc = self._pg_ctl("-w", "-t", str(PG_CTL_TIMEOUT), "-m", mode, "stop", check=False)
            ok = proc.returncode == 0 or "not running" in (proc.stderr + proc.stdout).lower() \
                or "no server running" in (proc.stderr + proc.stdout).lower()
        except (subprocess.TimeoutExpired, OSError):
            ok = False
        if not ok and mode != "immediate":
            try:
                self._pg_ctl("-w", "-t", "30", "-m", "immediate", "stop", check=False)
            except (subprocess.TimeoutExpired, OSError):
                pass
        # Last resort: kill the postmaster (and thereby its children) directly.
        pid = self._postmaster_pid()
        if pid and _pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            _wait_pid_gone(pid, 10)
        self._running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast`` by default; ``immediate`` simulates a crash) and start
        again on the same port and data dir.  Existing client connections break."""
        if self._stopped:
            raise RuntimeError("cannot restart a stopped PostgresServer")
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"invalid shutdown mode {mode!r}")
        self._stop_process(mode)
        last: Exception | None = None
        for _ in range(20):  # the port may linger briefly after the old postmaster exits
            try:
                self._start_process()
                return
            except RuntimeError as exc:
                last = exc
                if not _port_clash(self.log_file):
                    raise
                self._stop_process("immediate")
                time.sleep(0.5)
        raise RuntimeError(f"could not restart PostgreSQL on port {self.port}: {last}")

    def stop(self) -> None:
        """Stop the server and remove its data dir.  Idempotent; runs at exit too."""
        if self._stopped:
            return
        self._stopped = True
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001
            pass
        try:
            self._stop_process("fast")
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            if self._extra_socket_dir:
                shutil.rmtree(self._extra_socket_dir, ignore_errors=True)

    # ---- databases ---------------------------------------------------------

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its SQLAlchemy URL."""
        self._execute(f"CREATE DATABASE {_quote_ident(name)}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS name, terminating its connections first."""
        self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    # ---- context manager ---------------------------------------------------

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("running" if self._running else "down")
        return f"<PostgresServer {state} port={self.port} data_dir={self.data_dir}>"


def _port_clash(log_file: Path) -> bool:
    tail = _tail(log_file, 10)
    return "already in use" in tail or "could not create any TCP/IP sockets" in tail


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an unreaped zombie (e.g. PID 1 that never reaps orphans) is dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_pid_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)


def start_postgres(base_dir: str | Path) -> PostgresServer:
    """Start a throwaway PostgreSQL server with database ``gridcase_test``.

    Raises RuntimeError if the binaries are missing or the server fails to start.
    """
    return PostgresServer(base_dir).start()
