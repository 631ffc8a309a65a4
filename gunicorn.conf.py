"""gunicorn settings for Gridcase: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn also reads this file by itself when it is started from this directory (its default ``--config`` is
``./gunicorn.conf.py``); command-line flags override what is set here (``scripts/run-demo`` and
``tests/server.py`` pass their own).

Environment: ``GRIDCASE_BIND`` (default 127.0.0.1:8000; a comma separates several addresses),
``GRIDCASE_WORKERS`` (default 2 x cores + 1, at most 12), ``GRIDCASE_THREADS`` (default 4),
``GRIDCASE_LOG_LEVEL`` (default info).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

from gunicorn.glogging import Logger


def _int_env(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        value = default
    return max(low, min(high, value))


def _cli_worker_class() -> str | None:
    """The worker class given on the command line, if any (it overrides ``worker_class`` below)."""
    argv = sys.argv[1:] + os.environ.get("GUNICORN_CMD_ARGS", "").split()
    for i, arg in enumerate(argv):
        if arg in ("-k", "--worker-class") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--worker-class="):
            return arg.split("=", 1)[1]
    return None


bind = [b.strip() for b in os.environ.get("GRIDCASE_BIND", "127.0.0.1:8000").split(",") if b.strip()]

# Requests are short and mostly wait on the database; 2 x cores + 1 is gunicorn's rule of thumb. Capped at
# 12: every worker holds its own PostgreSQL pool (up to 20 connections), and beyond that more workers only
# queue on SQLite's one writer or the database's connection limit.
workers = _int_env("GRIDCASE_WORKERS", 2 * multiprocessing.cpu_count() + 1, 1, 64)
if "GRIDCASE_WORKERS" not in os.environ:
    workers = min(workers, 12)

# Threads, so one phone uploading a photo over a weak network occupies one thread, not a whole worker.
worker_class = "gthread"
threads = _int_env("GRIDCASE_THREADS", 4, 1, 64)
if _cli_worker_class() in ("sync", "gunicorn.workers.sync.SyncWorker"):
    # gunicorn silently turns "sync" with threads > 1 into gthread: keep an explicit --worker-class sync
    # (tests/server.py) a real sync worker.
    threads = 1

# A worker whose main loop is silent this long is killed and replaced. With gthread the main loop keeps
# beating while threads wait on slow clients, so this only catches a truly stuck process; 60 s leaves room
# for a 500-op sync batch on a loaded PostgreSQL. (Slow uploads are bounded by MEDIA_UPLOAD_TIMEOUT_S.)
timeout = 60
# On SIGTERM (deploys), in-flight requests get this long to finish: a sync batch takes well under 10 s, and
# a phone whose request is cut retries safely (ops are idempotent).
graceful_timeout = 20
# Keep idle connections briefly: a phone syncs, then checks missing photos and uploads them right away;
# longer only ties up connection slots behind a load balancer that keeps its own (longer) idle timeout.
keepalive = 5

# Request line and headers: looser than the app's own limits (GRIDCASE_MAX_URL_BYTES 4096,
# GRIDCASE_MAX_HEADER_BYTES 16384, GRIDCASE_MAX_HEADER_FIELDS 60), so a request over those gets the app's
# JSON 414 / 431 rather than gunicorn's HTML 400; still bounded, so no worker parses megabytes of headers.
# (8190 is the most gunicorn allows for the request line.) nginx in front keeps its own, matching limits.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 32768  # one header may be the whole of the app's 16 KiB and more: ours answers

# Recycle workers now and then (memory of image decoding is returned to the system), spread out so that
# not all workers restart at once.
max_requests = 2000
max_requests_jitter = 200

# gunicorn >= 24 opens a control socket at ~/.gunicorn/gunicorn.ctl, one path for every server of the user:
# two servers on one machine (or parallel test servers) would fight over it. Not used here.
control_socket_disable = True

loglevel = os.environ.get("GRIDCASE_LOG_LEVEL", "info")
errorlog = "-"
accesslog = "-"


class JsonAtoms(dict):
    """gunicorn's access-log atoms, escaped for a JSON string (gunicorn's own wrapper only escapes ``"``)."""

    def __init__(self, atoms: dict):
        super().__init__()
        for key, value in atoms.items():
            self[key] = json.dumps(value, ensure_ascii=False)[1:-1] if isinstance(value, str) else value

    def __getitem__(self, key):
        if key.startswith("{"):
            key = key.lower()
        return super().__getitem__(key) if key in self else "-"


class JsonLogger(Logger):
    atoms_wrapper_class = JsonAtoms

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The id the app answered with (it takes a proxy's X-Request-Id or makes one), else the proxy's.
        atoms["request_id"] = atoms.get("{x-request-id}o") or atoms.get("{x-request-id}i") or "-"
        return atoms


logger_class = JsonLogger
# One JSON object per line: time, client, method, path, query, status, bytes, duration (ms), the request id
# of the request (X-Request-Id as answered by the app, else as sent by the proxy, else "-"), user agent and worker pid.
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "query": "%(q)s", '
    '"status": "%(s)s", "bytes": "%(b)s", "ms": %(M)s, "request_id": "%(request_id)s", '
    '"user_agent": "%(a)s", "pid": "%(p)s"}'
)
