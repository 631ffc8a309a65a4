"""Prometheus metrics at ``/metrics``: requests, latencies and CPU by route, sync ops by status, photo pipeline
timings, and, read from the database at scrape time, held ops, open conflicts, devices with unsent work and
how many days ahead the holiday calendar knows. Under gunicorn set PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py
does) so every worker's counters add up."""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import func, select

from app.errors import NotFound
from app.extensions import db

REQUESTS = Counter("gridcase_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("gridcase_http_request_seconds", "HTTP request latency", ["endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
# CPU of the thread that served the request (time.thread_time): what a route costs the app node, apart from
# the time it waited for the database, the object store or the GIL. Work handed to other threads (the S3
# uploads of a photo's derivatives) is not in it.
CPU = Counter("gridcase_http_request_cpu_seconds", "CPU time of the thread serving the request", ["endpoint"])
SYNC_OPS = Counter("gridcase_sync_ops_total", "Sync ops answered, by status", ["status"])
PHOTO_SECONDS = Histogram("gridcase_photo_pipeline_seconds", "Photo pipeline time per photo",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

blp = Blueprint("metrics", __name__)


def _registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _database_gauges() -> str:
    from app.cases.deadlines import coverage
    from app.cases.models import Conflict
    from app.devices.models import Device
    from app.sync.models import HeldOp

    held = db.session.scalar(select(func.count()).select_from(HeldOp))
    conflicts = db.session.scalar(select(func.count()).select_from(Conflict).where(Conflict.status == "open"))
    unsent = db.session.scalar(select(func.count()).select_from(Device).where(Device.outbox_pending > 0))
    calendar_days_ahead = coverage()["days_ahead"]
    lines = []
    for name, help_text, value in (
            ("gridcase_held_ops", "Ops held for cases not seen yet", held),
            ("gridcase_conflicts_open", "Conflicts waiting for a reviewer", conflicts),
            ("gridcase_devices_with_unsent", "Devices reporting unsent work", unsent),
            ("gridcase_calendar_days_ahead",
             "Days from today to the last day the holiday calendar knows (alert under 90)", calendar_days_ahead)):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"


def allowed_networks(value: str) -> tuple:
    """The networks of ``GRIDCASE_METRICS_ALLOW`` ("10.0.0.0/8, ::1"); a wrong entry stops the app at start."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def _may_scrape() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    if token and hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.config["METRICS_NETWORKS"])


@blp.get("/metrics")
def metrics():
    if not _may_scrape():
        raise NotFound()  # not advertised: to anyone else it is a route that does not exist
    body = generate_latest(_registry()).decode() + _database_gauges()
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def register(app: Flask) -> None:
    app.register_blueprint(blp)

    @app.before_request
    def _start():
        g.metrics_started = time.perf_counter()
        g.metrics_cpu_started = time.thread_time()

    @app.after_request
    def _count(response):
        endpoint = request.endpoint or "unknown"
        if endpoint != "metrics.metrics":
            REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
            LATENCY.labels(endpoint).observe(time.perf_counter() - g.get("metrics_started", time.perf_counter()))
            CPU.labels(endpoint).inc(max(0.0, time.thread_time() - g.get("metrics_cpu_started", time.thread_time())))
        return response


def count_sync_results(results: list[dict]) -> None:
    for result in results:
        SYNC_OPS.labels(result.get("status", "unknown")).inc()
