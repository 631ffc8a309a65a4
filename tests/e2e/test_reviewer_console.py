"""The reviewer console (审核台) end to end, against the real server: the queue, the case page and its
transitions, a case that goes round the whole loop with a grid worker who resolves it offline, conflicts
settled with "take field value", bulk accept answered per case, and the screens at 1280 × 800 and 360 × 640
(screenshots in docs/screenshots/). The server's state is checked through the API after every step."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from pwa_helpers import PASSWORDS, PHONE, PHOTOS, SCREENSHOTS, report_from_another_phone
from test_field_app import items, log_in, until, wait_all_sent

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}


def shot(page, name, full_page=False):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('#toast').innerHTML = ''")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def desk(browser, live_server):
    """A reviewer's desktop browser (1280 × 800)."""
    context = browser.new_context(viewport=DESKTOP, device_scale_factor=1, locale="zh-CN", base_url=live_server.url)
    context.set_default_timeout(20_000)
    context.on("console", lambda m: print(f"desk console.{m.type}: {m.text}"))
    context.on("weberror", lambda e: print(f"desk page error: {e.error}"))
    yield context
    context.close()


def log_in_reviewer(page, username="reviewer"):
    page.goto("/")
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("button[type=submit]")
    page.wait_for_selector("#q-list .qrow, #q-list .hint")
    until(page, "() => navigator.serviceWorker.controller !== null")  # not wait_for_function: the CSP forbids eval


def report(api, description, *, device="e2e-console-phone", **kwargs):
    """A case reported from another phone of wanggeyuan's (state reported, version 1)."""
    return report_from_another_phone(api, "wanggeyuan", description, device=device, **kwargs)


def search(page, text):
    """Narrow the queue to the cases whose description holds ``text`` (the filter form's text search)."""
    page.fill("#qf input[name=q]", text)
    page.click("#qf button[type=submit]")
    until(page, """(text) => {
        const rows = [...document.querySelectorAll("#q-list .qrow")];
        return rows.length > 0 && rows.every((r) => r.textContent.includes(text));
    }""", text)


CONFIRMED = ("reject", "verify_close")  # they end a case: the console asks for confirmation


def act(page, action, **fields):
    page.click(f"#act-buttons [data-act={action}]")
    if fields or action in CONFIRMED:
        for selector, value in fields.items():
            if selector == "assignee":  # a picker of names; the value sent is the username
                page.select_option("#act-assignee", value)
            else:
                page.fill(f"#act-{selector}", value)
        page.click(f"[data-act-confirm={action}]")
    page.wait_for_selector("[data-testid=act-result]")
    return page.get_attribute("[data-testid=act-result]", "data-status")


def test_the_whole_loop_reviewer_then_offline_grid_worker_then_close_out(desk, phone, api):
    tag = uuid.uuid4().hex[:8]
    case_id = report(api, f"小区消防通道被占 {tag}", risk="red", category="fire_hazard")
    reviewer = api.login("reviewer")
    page = desk.new_page()
    log_in_reviewer(page)
    search(page, tag)
    row = page.locator(f"[data-case-row='{case_id}']")
    assert "已上报" in row.inner_text() and "红" in row.inner_text()
    assert row.locator("[data-light]").inner_text() in ("正常", "临期", "超期")

    # accept, then assign to the grid worker
    row.locator("a").click()
    page.wait_for_selector("[data-testid=review-state][data-state=reported]")
    assert act(page, "accept") == "applied"
    page.wait_for_selector("[data-testid=review-state][data-state=accepted]")
    assert api.get(reviewer, f"/api/v1/cases/{case_id}")["state"] == "accepted"
    assert act(page, "assign", assignee="wanggeyuan") == "applied"
    page.wait_for_selector("[data-testid=review-state][data-state=assigned]")
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert (case["state"], case["assignee"], case["version"]) == ("assigned", "wanggeyuan", 3)
    assert page.inner_text("[data-testid=review-assignee]") == "张网格员"  # a name, not a login

    # the grid worker resolves it with an after-photo while offline
    field = phone.new_page()
    log_in(field, "wanggeyuan")
    field.goto("/#tasks")
    field.wait_for_selector(f"[data-group=assigned_me] [data-case='{case_id}']")
    phone.set_offline(True)
    field.reload()
    field.click(f"[data-group=assigned_me] [data-case='{case_id}']")
    field.fill("#note-text", "已清理消防通道，现场复查畅通")
    field.set_input_files("#note-photos", str(PHOTOS / "DSCN0040.jpg"))
    field.wait_for_selector("#note-thumbs .thumb img")
    field.click("[data-action=resolve]")
    field.wait_for_selector("[data-testid=case-state]:has-text('已整改')")
    assert [(i["body"].get("action"), i["state"]) for i in items(field) if i["body"].get("case_id") == case_id] \
        == [("resolve", "waiting")]
    assert api.get(reviewer, f"/api/v1/cases/{case_id}")["state"] == "assigned"  # nothing left the phone

    phone.set_offline(False)
    wait_all_sent(field)
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert case["state"] == "resolved" and case["missing_photos"] == []
    [after] = case["photos_by_role"]["rectification"]
    assert not after["missing"]

    # the reviewer sees the after-photo (thumbnail → display size → original) and the timeline, and closes it out
    page.reload()
    page.wait_for_selector("[data-testid=review-state][data-state=resolved]")
    thumb = page.locator(f"[data-role=rectification] [data-sha='{after['sha256']}'] img")
    until(page, "(sha) => document.querySelector(`img[data-thumb='${sha}']`)?.naturalWidth > 0", after["sha256"])
    thumb.click()
    until(page, "() => document.querySelector('#dlg-img')?.naturalWidth > 0")
    assert page.locator("#photo-dlg[open] [data-action=original]").is_visible()
    with page.expect_download() as download:
        page.click("#photo-dlg [data-action=original]")
    assert download.value.suggested_filename.endswith("-original.jpg")
    page.click("#photo-dlg [data-action=dlg-close]")
    timeline = page.inner_text("ol.timeline")
    assert "已交办 → 已整改" in timeline and "张网格员" in timeline
    assert act(page, "verify_close") == "applied"
    page.wait_for_selector("[data-testid=review-state][data-state=closed]")
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert case["state"] == "closed" and case["closed_at"]
    assert [e["data"]["action"] for e in case["timeline"] if e["action"] == "transition"] == [
        "accept", "assign", "resolve", "verify_close"]


def test_conflicting_offline_edit_is_settled_with_the_field_value(desk, phone, api):
    tag = uuid.uuid4().hex[:8]
    case_id = report(api, f"井盖缺失 {tag}", risk="yellow", category="road_safety")
    # the grid worker's phone, offline, lowers the colour to blue (an edit made from version 1) ...
    field = phone.new_page()
    log_in(field, "wanggeyuan")
    phone.set_offline(True)
    field.evaluate("""async (caseId) => {
        const { newItem } = await import("/js/core/outbox.js");
        const store = window.gridcase.store;
        const item = newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(),
            type: "case.update", body: { case_id: caseId, base_version: 1, changes: { risk_level: "blue" } },
            now: Date.now(), label: "risk_level → blue" });
        const session = await store.getMeta("session");
        await store.putItems([{ ...item, owner: session.user.username }]);
    }""", case_id)
    # ... while a colleague's phone, online, raised it to red
    other = api.login("wanggeyuan", device_id="e2e-console-colleague")
    answer = api.post(other, "/api/v1/sync", {"device_id": "e2e-console-colleague", "ops": [{
        "op_id": str(uuid.uuid4()), "seq": 1, "type": "case.update", "case_id": case_id, "base_version": 1,
        "changes": {"risk_level": "red"}}]})
    assert answer["results"][0]["status"] == "applied"
    phone.set_offline(False)
    field.evaluate("window.gridcase.syncNow('manual')")
    wait_all_sent(field)
    [item] = [i for i in items(field) if i["type"] == "case.update"]
    assert item["state"] == "conflict"

    reviewer = api.login("reviewer")
    [conflict] = api.get(reviewer, "/api/v1/conflicts", case_id=case_id)
    assert (conflict["field"], conflict["server"], conflict["client"]) == ("risk_level", "red", "blue")

    page = desk.new_page()
    log_in_reviewer(page)
    page.goto("/#conflicts")
    card = page.locator(f"[data-conflict='{conflict['id']}']")
    card.wait_for()
    assert card.locator("[data-testid=server-value]").inner_text() == "红"
    assert card.locator("[data-testid=client-value]").inner_text() == "蓝"
    shot(page, "review-conflicts-1280")
    card.get_by_role("button", name="采用现场值").click()
    page.wait_for_selector(f"[data-conflict='{conflict['id']}']", state="detached")
    [settled] = api.get(reviewer, "/api/v1/conflicts", case_id=case_id, status="all")
    assert (settled["status"], settled["resolution"]) == ("resolved", "client")
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert case["risk_level"] == "blue"
    assert case["timeline"][-1]["action"] == "conflict_resolved"


def test_bulk_accept_is_answered_per_case(desk, api):
    tag = uuid.uuid4().hex[:8]
    ids = [report(api, f"占道经营 {tag} {k}", risk="blue", category="public_order") for k in range(3)]
    reviewer = api.login("reviewer")
    page = desk.new_page()
    log_in_reviewer(page)
    search(page, tag)
    for case_id in ids:
        page.locator(f"[data-case-row='{case_id}']").wait_for()
    page.check(f"[data-case-row='{ids[0]}'] input[data-bulk]")
    page.check(f"[data-case-row='{ids[1]}'] input[data-bulk]")
    assert page.inner_text("[data-testid=selected-count]") == "已选 2 件"
    page.click("[data-action=bulk][data-bulk=accept]")
    page.wait_for_selector("[data-testid=bulk-results]")
    results = page.locator("[data-testid=bulk-results] li")
    assert results.count() == 2
    assert {results.nth(k).get_attribute("data-result") for k in range(2)} == {"applied"}
    assert "成功 2 件" in page.inner_text("[data-testid=bulk-results]")
    assert [api.get(reviewer, f"/api/v1/cases/{i}")["state"] for i in ids] == ["accepted", "accepted", "reported"]
    # the queue shows the new states
    page.wait_for_selector(f"[data-case-row='{ids[0]}'][data-state=accepted]")

    # a case rejected meanwhile (from another desk) fails on its own; the other goes through
    page.check(f"[data-case-row='{ids[2]}'] input[data-bulk]")
    other_row = page.locator(f"[data-case-row='{ids[0]}'] input[data-bulk]")
    other_row.check()
    api.post(reviewer, f"/api/v1/cases/{ids[2]}/transitions", {"action": "reject", "base_version": 1, "reason": "重复上报"})
    page.fill("#bulk-reason", "请补充现场照片")
    page.click("[data-action=bulk][data-bulk=return]")
    page.wait_for_selector("[data-testid=bulk-results]:has-text('退回补充')")
    by_id = {li.get_attribute("data-id"): li for li in page.locator("[data-testid=bulk-results] li").all()}
    assert by_id[ids[0]].get_attribute("data-result") == "applied"
    assert by_id[ids[2]].get_attribute("data-result") in ("conflict", "rejected")
    assert "成功 1 件，未成功 1 件" in page.inner_text("[data-testid=bulk-results]")
    assert api.get(reviewer, f"/api/v1/cases/{ids[0]}")["state"] == "returned"
    assert api.get(reviewer, f"/api/v1/cases/{ids[2]}")["state"] == "rejected"


def _console_screens(page, case_id, size):
    page.goto("/#queue")
    page.wait_for_selector(f"[data-case-row='{case_id}']")
    shot(page, f"review-queue-{size}")
    page.goto(f"/#review/{case_id}")
    page.wait_for_selector("[data-testid=review-state]")
    page.wait_for_selector("ol.timeline li")
    shot(page, f"review-case-{size}", full_page=True)
    page.goto("/#dash")
    page.wait_for_selector("#chart-trend svg")
    page.wait_for_selector("#dash-map .mk")
    page.wait_for_timeout(300)
    shot(page, f"review-dashboard-{size}", full_page=True)


TOUCH_CHECK = """() => [...document.querySelectorAll("button, a, select, input, textarea, label.btn, summary")]
    .filter((el) => el.offsetParent !== null && !el.closest(".leaflet-container") && el.type !== "file"
             && el.type !== "checkbox")
    .map((el) => [el.outerHTML.slice(0, 80), el.getBoundingClientRect()])
    .filter(([, r]) => r.height < 47.5 || r.width < 47.5)
    .map(([html, r]) => `${html} ${r.width}x${r.height}`)"""


def test_screens_at_desktop_and_phone_sizes_with_large_targets(browser, live_server, desk, api):
    case_id = report(api, f"楼道电动车充电 {uuid.uuid4().hex[:8]}", risk="red", category="ebike_charging")
    reviewer = api.login("reviewer")
    api.post(reviewer, f"/api/v1/cases/{case_id}/transitions", {"action": "accept", "base_version": 1})
    page = desk.new_page()
    log_in_reviewer(page)
    _console_screens(page, case_id, "1280")
    figures = page.inner_text("#dash-figs")
    for label in ("销号率", "按时办结率", "网格内化解率", "办结时长中位数", "当前超期"):
        assert label in figures
    assert page.locator("#chart-region svg .bar").count() == 4  # the township's four communities
    assert "正常" in page.inner_text("#map-legend")

    small = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True, locale="zh-CN",
                                base_url=live_server.url)
    try:
        phone_page = small.new_page()
        log_in_reviewer(phone_page)
        _console_screens(phone_page, case_id, "360")
        for route in ("#queue", f"#review/{case_id}", "#conflicts", "#devices", "#dash"):
            phone_page.goto("/" + route)
            phone_page.wait_for_selector("main h2")
            phone_page.wait_for_timeout(300)
            assert phone_page.evaluate(TOUCH_CHECK) == [], route
            # nothing wider than the phone's screen
            assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], route
    finally:
        small.close()


def test_devices_page_shows_who_holds_unsent_work(desk, api):
    phone = api.login("wanggeyuan", device_id="e2e-console-unsent")
    api.post(phone, "/api/v1/sync", {"device_id": "e2e-console-unsent", "ops": [],
                                     "outbox": {"pending": 7, "oldest": "2026-11-20T09:00:00+08:00"}})
    page = desk.new_page()
    log_in_reviewer(page)
    page.goto("/#devices")
    card = page.locator("[data-device='e2e-console-unsent']")
    card.wait_for()
    assert "未发送 7 条" in card.inner_text() and "wanggeyuan" in card.inner_text()
    assert "2026/11/20 09:00:00" in card.inner_text() or "2026/11/20" in card.inner_text()
    # English on request
    page.goto("/#me")
    page.click("[data-lang=en]")
    page.locator("[data-lang=en][aria-pressed=true]").wait_for()  # the English view is drawn before moving on
    page.goto("/#devices")
    page.locator("[data-device='e2e-console-unsent']:has-text('7 unsent')").wait_for()
    page.goto("/#me")
    page.click("[data-lang=zh]")


CACHED_URLS = """async () => {
    const out = [];
    for (const key of await caches.keys())
      for (const req of await (await caches.open(key)).keys()) out.push(new URL(req.url).pathname);
    return out;
}"""


def _is_console(path):
    return path.startswith("/js/review/") or path == "/js/core/charts.js"


def test_field_phones_never_download_the_console_and_reviewers_keep_it_offline(phone, desk):
    # a grid worker's phone: every field view, and a console route typed in by hand
    asked = []
    phone.on("request", lambda r: asked.append(r.url))
    field = phone.new_page()
    log_in(field, "wanggeyuan")
    for route, ready in (("#tasks", "[data-group=my_reports]"), ("#map", "#map"), ("#outbox", "[data-group=waiting]"),
                         ("#me", "[data-action=logout]"), ("#queue", "[data-action=save-report]")):
        field.goto("/" + route)
        field.wait_for_selector(ready)
    field.reload()
    field.wait_for_selector("[data-action=save-report]")
    paths = [urlsplit(u).path for u in asked]
    assert "/js/field/capture.js" in paths and "/js/router.js" in paths
    assert [p for p in paths if _is_console(p)] == []
    loaded = field.evaluate("performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname)")
    assert [p for p in loaded if _is_console(p)] == []
    cached = field.evaluate(CACHED_URLS)
    assert "/js/field/capture.js" in cached and "/js/ui.js" in cached
    assert [p for p in cached if _is_console(p)] == []

    # a reviewer's browser loads the console, keeps it on first use, and opens it again offline
    page = desk.new_page()
    log_in_reviewer(page)
    page.reload()  # now through the service worker
    page.wait_for_selector("#q-list .qrow, #q-list .hint")
    cached = page.evaluate(CACHED_URLS)
    assert {"/js/review/queue.js", "/js/review/common.js"} <= set(cached)
    desk.set_offline(True)
    try:
        page.reload()
        page.wait_for_selector("#qf")  # the console's own queue view, from the cache
        page.wait_for_selector("#q-list .err:has-text('审核台需要联网')")
    finally:
        desk.set_offline(False)


def test_the_api_docs_open_without_leaving_the_host(browser, live_server):
    """Swagger UI renders the operations from the app's own copy; no request goes to another host."""
    from urllib.parse import urlparse

    context = browser.new_context(base_url=live_server.url)
    hosts = set()
    context.on("request", lambda req: hosts.add(urlparse(req.url).netloc))
    page = context.new_page()
    page.goto("/api/docs")
    page.wait_for_selector(".opblock", timeout=20_000)  # the operations are drawn
    assert page.locator(".opblock").count() > 20
    assert hosts == {urlparse(live_server.url).netloc}, hosts
    context.close()
