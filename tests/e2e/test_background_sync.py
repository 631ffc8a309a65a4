"""Background Sync with no page of the app open: the service worker sends the outbox itself."""

from __future__ import annotations

import time
import uuid

import pytest
from test_field_app import capture, items, log_in, queue

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_service_worker_sends_the_outbox_with_no_page_open(phone, api, live_server):
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    phone.set_offline(True)
    tag = uuid.uuid4().hex[:8]
    capture(page, "fire_hazard", "yellow", f"后台同步 {tag}", "DSCN0021.jpg")
    assert [i["state"] for i in items(page)][-1] == "waiting"
    # leave the app: the tab shows another page, so no window of the app's origin is open
    page.goto("about:blank")
    cdp = phone.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 10
    while not registrations and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    reg = next(r for r in registrations if r["scopeURL"].startswith(live_server.url) and not r["isDeleted"])
    phone.set_offline(False)
    cdp.send("ServiceWorker.dispatchSyncEvent", {"origin": live_server.url, "registrationId": reg["registrationId"],
                                                  "tag": "gridcase-outbox", "lastChance": False})
    reviewer = api.login("reviewer")
    deadline = time.monotonic() + 30
    found = []
    while time.monotonic() < deadline and not found:
        found = [c for c in queue(api, reviewer) if tag in (c.get("description") or "")]
        if not found:
            time.sleep(0.5)
    assert len(found) == 1, "the service worker did not send the outbox"
