"""The field app end to end: offline capture, the outbox across reloads, sync, fixing a refused report, and
an assigned case resolved offline. Screenshots of the main screens go to docs/screenshots/ (360 × 640)."""

from __future__ import annotations

import time
import uuid

import pytest
from pwa_helpers import INSIDE, PASSWORDS, PHOTOS, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUTSIDE_CITY = {"latitude": 27.70, "longitude": 120.50, "accuracy": 10}  # south-west of the demo city
MICRO = "3303810010010101"


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('#toast').innerHTML = ''")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def log_in(page, username):
    page.goto("/")
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-action=cat]")
    # the app shell is cached once the service worker controls the page (polled from here: the app's CSP
    # forbids eval, which wait_for_function's in-page polling uses)
    until(page, "() => navigator.serviceWorker.controller !== null")


def capture(page, category, risk, text, photo, expect_micro=True):
    count = len(items(page))
    page.goto("/#capture")
    page.wait_for_selector(f"[data-code={category}]")
    if expect_micro:
        page.wait_for_selector("[data-testid=mg-found]")
    else:
        page.wait_for_selector("[data-testid=gps]")
    page.click(f"[data-code={category}]")
    page.click(f"[data-risk={risk}]")
    page.fill("#description", text)
    page.set_input_files("#photo-input", str(PHOTOS / photo))
    page.wait_for_selector("#thumbs .thumb img")
    page.click("[data-action=save-report]")
    until(page, "async (n) => (await window.gridcase.store.allItems()).length > n", count)
    page.wait_for_selector("#description:text-is('')")  # the form is fresh again


def items(page):
    return sorted(page.evaluate("window.gridcase.store.allItems()"), key=lambda i: i["seq"])


def until(page, js, arg=None, timeout_s=30.0):
    """Poll an async page expression until it is truthy (wait_for_function does not await promises)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(js, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {js}")
        page.wait_for_timeout(250)


def wait_all_sent(page, timeout_s=30.0):
    """Every op answered and every photo uploaded (ops go first, their photos after them)."""
    until(page, """async () => {
        const items = await window.gridcase.store.allItems();
        const photos = await window.gridcase.store.allPhotos();
        return items.length > 0 && items.every((i) => ["sent", "held", "conflict", "needs_fixing"].includes(i.state))
            && photos.every((p) => p.state === "sent" || p.state === "failed");
    }""", timeout_s=timeout_s)


def queue(api, reviewer):
    return api.get(reviewer, "/api/v1/cases", limit=100)


def test_offline_capture_survives_reload_and_syncs_exactly_once(phone, api):
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    shot(page, "capture")

    phone.set_offline(True)
    page.reload()  # from the service worker's cache: no network at all
    page.wait_for_selector("[data-action=cat]")
    assert page.inner_text("#net") == "离线"
    tag = uuid.uuid4().hex[:8]
    capture(page, "fire_hazard", "red", f"楼道堆放杂物 {tag}-1", "DSCN0010.jpg")
    capture(page, "sanitation", "yellow", f"垃圾堆积未清运 {tag}-2", "DSCN0012.jpg")
    assert [i["state"] for i in items(page)] == ["waiting", "waiting"]
    page.goto("/#outbox")
    page.wait_for_selector("[data-group=waiting] [data-item]")
    assert "待发送 2" in page.inner_text("#statusbar")
    shot(page, "outbox")

    # close the app and open it again, still offline: the outbox is still there
    page.close()
    page = phone.new_page()
    page.goto("/#outbox")
    page.wait_for_selector("[data-group=waiting] [data-item]")
    before = items(page)
    assert len(before) == 2 and all(i["state"] == "waiting" for i in before)
    assert all(len(i["photos"]) == 1 for i in before)

    phone.set_offline(False)  # the "online" event starts the sync by itself
    try:
        wait_all_sent(page)
    finally:
        print(page.evaluate("async () => (await window.gridcase.store.allItems()).map(i => [i.state, i.result])"))
        print(page.evaluate("async () => (await window.gridcase.store.allPhotos()).map(i => [i.state, i.error])"))
    after = items(page)
    assert [i["state"] for i in after] == ["sent", "sent"], after
    assert [i["op_id"] for i in after] == [i["op_id"] for i in before]

    reviewer = api.login("reviewer")
    rows = queue(api, reviewer)
    for item in before:
        report = item["body"]["report"]
        assert sum(1 for c in rows if c.get("description") == report["description"]) == 1
        case = api.get(reviewer, f"/api/v1/cases/{report['id']}")
        assert case["micro_grid_id"] == MICRO
        assert case["state"] == "reported"
        assert case["missing_photos"] == []
        assert [p["sha256"] for p in case["photos_by_role"]["evidence"]] == report["photos"]
        assert not any(p["missing"] for p in case["photos_by_role"]["evidence"])
    page.goto("/#tasks")
    page.wait_for_selector("[data-group=my_reports] [data-case]")
    shot(page, "tasks")
    page.goto("/#map")
    page.wait_for_selector("#map .leaflet-interactive")
    shot(page, "map")


def test_refused_report_is_fixed_and_sent_again(phone, api):
    phone.set_geolocation(OUTSIDE_CITY)
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    text = f"路灯损坏 {uuid.uuid4().hex[:8]}"
    capture(page, "road_safety", "blue", text, "DSCN0021.jpg", expect_micro=False)
    wait_all_sent(page)
    [item] = [i for i in items(page) if i["body"]["report"]["description"] == text]
    assert item["state"] == "needs_fixing"
    assert item["result"]["code"] == "no_micro_grid"
    page.goto("/#outbox")
    card = page.locator(f"[data-group=fix] [data-item='{item['id']}']")
    card.wait_for()
    assert "no_micro_grid" in card.inner_text()
    shot(page, "outbox-needs-fixing")

    card.get_by_role("link", name="修改").click()
    page.wait_for_selector("#micro-grid")
    page.select_option("#micro-grid", MICRO)
    page.click("[data-action=save-fix]")
    until(page, "async (id) => (await window.gridcase.store.getItem(id)).state === 'sent'", item["id"])
    fixed = page.evaluate(f"window.gridcase.store.getItem({item['id']!r})")
    assert fixed["op_id"] != item["op_id"], "changed content goes with a new op_id"
    assert fixed["body"]["report"]["id"] == item["body"]["report"]["id"]
    reviewer = api.login("reviewer")
    case = api.get(reviewer, f"/api/v1/cases/{item['body']['report']['id']}")
    assert case["micro_grid_id"] == MICRO
    assert "outside_micro_grid" in case["flags"]


def test_assigned_case_started_and_resolved_offline(phone, api):
    # a case reported from another phone, accepted and assigned to wanggeyuan by the reviewer
    other = api.login("wanggeyuan", device_id="e2e-other-phone")
    case_id = str(uuid.uuid4())
    answer = api.post(other, "/api/v1/sync", {"device_id": "e2e-other-phone", "ops": [{
        "op_id": str(uuid.uuid4()), "seq": 1, "type": "report.create", "report": {
            "id": case_id, "category": "gas_safety", "risk_level": "red", "description": "餐馆燃气软管老化",
            "micro_grid_id": MICRO, "location": {"lat": INSIDE["latitude"], "lon": INSIDE["longitude"], "accuracy_m": 5},
            "captured_at": "2026-11-22T08:03:11+08:00", "photos": []}}]})
    assert answer["results"][0]["status"] == "applied"
    reviewer = api.login("reviewer")
    api.post(reviewer, f"/api/v1/cases/{case_id}/transitions", {"action": "accept", "base_version": 1})
    api.post(reviewer, f"/api/v1/cases/{case_id}/transitions",
             {"action": "assign", "base_version": 2, "assignee": "wanggeyuan"})

    page = phone.new_page()
    log_in(page, "wanggeyuan")
    page.goto("/#tasks")
    page.wait_for_selector(f"[data-group=assigned_me] [data-case='{case_id}']")

    phone.set_offline(True)
    page.reload()
    page.click(f"[data-group=assigned_me] [data-case='{case_id}']")
    page.click("[data-action=start]")
    page.wait_for_selector("[data-action=resolve]")
    page.fill("#note-text", "已更换燃气软管，现场复查正常")
    page.set_input_files("#note-photos", str(PHOTOS / "DSCN0040.jpg"))
    page.wait_for_selector("#note-thumbs .thumb img")
    shot(page, "case")
    page.click("[data-action=resolve]")
    page.wait_for_selector("[data-testid=case-state]:has-text('已整改')")
    pending = [i for i in items(page) if i["body"].get("case_id") == case_id]
    assert [(i["type"], i["body"]["action"], i["state"]) for i in pending] == [
        ("case.transition", "start", "waiting"), ("case.transition", "resolve", "waiting")]

    phone.set_offline(False)
    wait_all_sent(page)
    assert all(i["state"] == "sent" for i in items(page))
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert case["state"] == "resolved"
    assert case["missing_photos"] == []
    assert case["photos_by_role"]["evidence"] == []
    [after_photo] = case["photos_by_role"]["rectification"]
    assert not after_photo["missing"]
    states = [e["changes"].get("state") for e in case["timeline"] if e["action"] == "transition"]
    assert states[-2:] == [["assigned", "in_progress"], ["in_progress", "resolved"]]


def test_login_screen_and_english(phone):
    page = phone.new_page()
    page.goto("/")
    page.wait_for_selector("#login-form")
    shot(page, "login")
    page.click("[data-lang=en]")
    page.wait_for_selector("text=Log in")
    assert page.locator("html").get_attribute("lang") == "en"


def test_expired_login_asks_to_log_in_again_and_nothing_is_lost(phone, api):
    page = phone.new_page()
    log_in(page, "zhiyuanzhe")
    # the volunteer sees only what volunteers may report, and no "handled on the spot"
    assert page.locator("[data-code=dispute]").count() == 0
    assert page.locator("#on-spot").count() == 0
    phone.set_offline(True)
    capture(page, "ebike_charging", "yellow", f"楼道电动车充电 {uuid.uuid4().hex[:8]}", "DSCN0010.jpg")
    # weeks offline: both tokens are dead (the server no longer knows them)
    page.evaluate("""async () => {
        const s = await window.gridcase.store.getMeta("session");
        await window.gridcase.store.setMeta("session", {...s, access_token: "x.y.z", refresh_token: "x.y.z", expires_at: 0});
    }""")
    phone.set_offline(False)
    page.wait_for_selector("#banner .banner a[href='#login']")
    [waiting] = items(page)
    assert waiting["state"] == "waiting"
    page.click("#banner a[href='#login']")
    page.fill("#password", PASSWORDS["zhiyuanzhe"])
    assert page.input_value("#username") == "zhiyuanzhe"
    page.click("button[type=submit]")
    wait_all_sent(page)
    [sent] = items(page)
    assert sent["state"] == "sent" and sent["op_id"] == waiting["op_id"]
    reviewer = api.login("reviewer")
    case = api.get(reviewer, f"/api/v1/cases/{sent['body']['report']['id']}")
    assert case["reporter"] == "zhiyuanzhe"


def test_touch_targets_are_at_least_48px(phone):
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    for route in ("#capture", "#outbox", "#me"):
        page.goto("/" + route)
        page.wait_for_selector("main h2")
        small = page.evaluate("""() => [...document.querySelectorAll("button, a, select, input, textarea, label.btn")]
            .filter((el) => el.offsetParent !== null && !el.closest(".leaflet-container") && el.type !== "file"
                     && el.type !== "checkbox")
            .map((el) => [el.outerHTML.slice(0, 80), el.getBoundingClientRect()])
            .filter(([, r]) => r.height < 47.5 || r.width < 47.5)
            .map(([html, r]) => `${html} ${r.width}x${r.height}`)""")
        assert small == [], route


def _assigned_case(api, description):
    """A case reported from another phone of wanggeyuan's, accepted and assigned to wanggeyuan by the reviewer."""
    other = api.login("wanggeyuan", device_id="e2e-other-phone")
    case_id = str(uuid.uuid4())
    answer = api.post(other, "/api/v1/sync", {"device_id": "e2e-other-phone", "ops": [{
        "op_id": str(uuid.uuid4()), "seq": 1, "type": "report.create", "report": {
            "id": case_id, "category": "public_order", "risk_level": "yellow", "description": description,
            "micro_grid_id": MICRO, "captured_at": "2026-11-22T08:03:11+08:00"}}]})
    assert answer["results"][0]["status"] == "applied"
    reviewer = api.login("reviewer")
    api.post(reviewer, f"/api/v1/cases/{case_id}/transitions", {"action": "accept", "base_version": 1})
    api.post(reviewer, f"/api/v1/cases/{case_id}/transitions",
             {"action": "assign", "base_version": 2, "assignee": "wanggeyuan"})
    return case_id, other


def test_transition_made_impossible_meanwhile_is_shown_as_a_conflict(phone, api):
    case_id, other = _assigned_case(api, "夜间有人聚集喧哗")
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    page.goto("/#tasks")
    page.click(f"[data-group=assigned_me] [data-case='{case_id}']")
    page.wait_for_selector("[data-action=start]")
    phone.set_offline(True)
    page.click("[data-action=start]")
    page.wait_for_selector("[data-testid=case-state]:has-text('处置中')")
    # meanwhile, the colleague's phone already started and resolved it
    for version, action in ((3, "start"), (4, "resolve")):
        op = {"op_id": str(uuid.uuid4()), "seq": version, "type": "case.transition", "case_id": case_id,
              "base_version": version, "action": action}
        if action == "resolve":
            op["note"] = {"id": str(uuid.uuid4()), "text": "已劝离"}
        assert api.post(other, "/api/v1/sync", {"device_id": "e2e-other-phone", "ops": [op]})["results"][0]["status"] \
            == "applied"
    phone.set_offline(False)
    wait_all_sent(page)
    [item] = [i for i in items(page) if i["body"].get("case_id") == case_id]
    assert item["state"] == "conflict"
    assert item["result"]["conflicts"][0]["server"] == "resolved"
    page.goto("/#outbox")
    card = page.locator(f"[data-group=conflict] [data-item='{item['id']}']")
    assert "服务器 已整改" in card.inner_text() and "你的 处置中" in card.inner_text()
    shot(page, "outbox-conflict")
    # the pulled case shows the server's state; the conflict waits for a reviewer, the phone lets it go
    page.goto(f"/#case/{case_id}")
    page.wait_for_selector("[data-testid=case-state]:has-text('已整改')")
    page.goto("/#outbox")
    card.get_by_role("button", name="知道了").click()
    page.wait_for_selector("[data-group=conflict] >> text=没有内容")


def test_tab_bar_hidden_before_login_and_map_zoom_buttons_large(phone):
    page = phone.new_page()
    page.goto("/")
    page.wait_for_selector("#login-form")
    assert not page.locator("#tabs").is_visible(), "the tab bar shows before login"
    log_in(page, "wanggeyuan")
    assert page.locator("#tabs").is_visible()
    page.goto("/#map")
    page.wait_for_selector(".leaflet-control-zoom a")
    for box in [a.bounding_box() for a in page.locator(".leaflet-control-zoom a").all()]:
        assert box["width"] >= 48 and box["height"] >= 48, box
