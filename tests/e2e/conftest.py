"""Browser tests of the field app (static/pwa): a real gunicorn (tests/server.py) on a fresh database made
by ``flask db upgrade`` + ``flask demo seed``, driven by the system Chromium through Playwright.

Locally they skip when /usr/bin/chromium is missing; in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pwa_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IN_CI,
    INSIDE,
    PHONE,
    ROOT,
    Api,
    next_id,
)
from server import ServerProcess


@pytest.fixture(scope="module")
def live_server(request, tmp_path_factory):
    """gunicorn serving the app and the PWA on a fresh, migrated, demo-seeded database of the engine under test."""
    tmp = tmp_path_factory.mktemp("e2e")
    if request.config.getoption("--db") == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"e2e_{os.getpid()}_{next_id()}")
    else:
        url = f"sqlite:///{tmp / 'gridcase.sqlite3'}"
    server = ServerProcess(url, tmp, workers=2, extra_env={"GRIDCASE_LOGIN_RATE_LIMIT": "200 per minute"})
    env = server.env()
    for args in (["db", "upgrade"], ["demo", "seed", "--no-cases"]):  # the tests make their own cases
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request, live_server):
    """Print the server's log when a browser test fails (what the page cannot show)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(live_server.log_text()[-6000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI needs the browser tests to run)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def phone(browser, live_server):
    """A 360 × 640 phone context with GPS inside the grid; the test may move it."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True,
                                  locale="zh-CN", geolocation=INSIDE, permissions=["geolocation"],
                                  base_url=live_server.url)
    context.set_default_timeout(20_000)
    # the page's console goes to the test's output (shown when a test fails)
    context.on("console", lambda m: print(f"console.{m.type}: {m.text}"))
    context.on("weberror", lambda e: print(f"page error: {e.error}"))
    yield context
    context.close()


@pytest.fixture
def api(live_server) -> Api:
    return Api(live_server.url)
