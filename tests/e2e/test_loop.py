"""The loop closes for every person, end to end in Chromium against the real server: a returned report
answered offline and what changed shown to the reviewer; an assignment that reaches an open worker's task
page untouched; a volunteer's closed report with its resolution note and the points; the assignee picker
with names and workload; reject and close-out asking for confirmation."""

from __future__ import annotations

import time
import uuid

import pytest
from pwa_helpers import PHOTOS, report_from_another_phone
from test_field_app import items, log_in, wait_all_sent
from test_reviewer_console import act, desk, log_in_reviewer  # noqa: F401  (desk is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def report(api, username, description, **kwargs):
    return report_from_another_phone(api, username, description, **kwargs)


def move(api, who, case_id, action, **body):
    case = api.get(who, f"/api/v1/cases/{case_id}")
    r = api.post(who, f"/api/v1/cases/{case_id}/transitions", {"action": action, "base_version": case["version"], **body})
    assert r["status"] == "applied", r
    return r


def test_a_returned_report_is_answered_offline_and_the_reviewer_sees_what_changed(phone, desk, api):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    case_id = report(api, "zhiyuanzhe", f"路口井盖松动 {tag}", risk="blue")
    reviewer = api.login("reviewer")
    move(api, reviewer, case_id, "return", reason="请补拍井盖照片并说明具体位置")

    field = phone.new_page()
    log_in(field, "zhiyuanzhe")
    field.goto("/#tasks")
    row = field.locator(f"[data-group=my_reports] [data-case='{case_id}']")
    row.wait_for()
    assert "退回补充" in row.inner_text()
    assert "请补拍井盖照片并说明具体位置" in row.locator("[data-testid=return-reason]").inner_text()
    row.click()
    field.wait_for_selector("[data-testid=case-return-reason]")
    assert "请补拍井盖照片并说明具体位置" in field.inner_text("[data-testid=case-return-reason]")

    # offline: change the description and the colour, add a photo, resubmit
    phone.set_offline(True)
    field.fill("#description", f"东门路口井盖松动，靠近公交站 {tag}")
    field.click("[data-action=risk][data-risk=yellow]")
    field.set_input_files("#photo-input", str(PHOTOS / "DSCN0040.jpg"))
    field.wait_for_selector("#thumbs .thumb img")
    field.click("[data-action=resubmit]")
    field.wait_for_selector("[data-testid=case-state][data-state=reported]")
    assert [(i["type"], i["state"]) for i in items(field) if i["body"].get("case_id") == case_id] == [
        ("case.update", "waiting"), ("case.note", "waiting"), ("case.transition", "waiting")]
    assert api.get(reviewer, f"/api/v1/cases/{case_id}")["state"] == "returned"  # nothing left the phone

    phone.set_offline(False)
    field.evaluate("window.gridcase.syncNow('manual')")
    wait_all_sent(field)
    case = api.get(reviewer, f"/api/v1/cases/{case_id}")
    assert case["state"] == "reported" and case["risk_level"] == "yellow"
    assert case["description"] == f"东门路口井盖松动，靠近公交站 {tag}"
    assert len(case["photos_by_role"]["evidence"]) == 1 and case["missing_photos"] == []

    page = desk.new_page()
    log_in_reviewer(page)
    page.goto(f"/#review/{case_id}")
    box = page.locator("[data-testid=since-return]")
    box.wait_for()
    text = box.inner_text()
    assert "请补拍井盖照片并说明具体位置" in text
    assert f"路口井盖松动 {tag}" in text and f"东门路口井盖松动，靠近公交站 {tag}" in text
    assert "蓝" in text and "黄" in text and "新增照片 1 张" in text


def test_an_assignment_reaches_an_open_task_page_untouched(browser, live_server, api):
    context = browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True,
                                  locale="zh-CN", base_url=live_server.url)
    context.set_default_timeout(20_000)
    try:
        # the default interval answers within a minute; this test asks every second so it runs quickly
        default = context.new_page()
        default.goto("/")
        assert default.evaluate("import('/js/watch.js').then((m) => m.pollMs())") <= 60_000
        default.close()
        context.add_init_script("localStorage.setItem('gridcase.poll_ms', '1000')")
        field = context.new_page()
        log_in(field, "wanggeyuan")
        field.goto("/#tasks")
        field.wait_for_selector("[data-group=assigned_me]")
        time.sleep(2)  # the first poll has set its baseline

        tag = uuid.uuid4().hex[:8]
        case_id = report(api, "zhiyuanzhe", f"消防通道堆放杂物 {tag}", risk="red", category="fire_hazard")
        reviewer = api.login("reviewer")
        move(api, reviewer, case_id, "accept")
        move(api, reviewer, case_id, "assign", assignee="wanggeyuan")
        assigned_at = time.monotonic()
        # nobody touches the phone: the task appears, with a notice and a badge on the tab
        field.wait_for_selector(f"[data-group=assigned_me] [data-case='{case_id}']", timeout=60_000)
        assert time.monotonic() - assigned_at < 60
        row = field.locator(f"[data-group=assigned_me] [data-case='{case_id}']")
        assert row.locator("[data-testid=new-task]").is_visible()
        assert "正常" in row.locator("[data-testid=deadline]").inner_text()  # the light in words, time left
        assert "剩" in row.locator("[data-testid=deadline]").inner_text()
        field.wait_for_selector("[data-testid=notice]")
        assert "新任务" in field.inner_text("[data-testid=notice]")
        assert field.inner_text("[data-tab=tasks] [data-testid=tasks-badge]") == "1"
        # opening it: no longer new
        row.click()
        field.wait_for_selector("[data-testid=case-state][data-state=assigned]")
        field.wait_for_selector("[data-tab=tasks] [data-testid=tasks-badge]", state="detached")
        assert "办结时限" in field.inner_text("[data-testid=deadline]")
    finally:
        context.close()


def test_a_volunteers_closed_report_shows_how_it_ended_and_the_points(phone, api):
    tag = uuid.uuid4().hex[:8]
    case_id = report(api, "zhiyuanzhe", f"楼道电动车充电 {tag}", risk="red", category="fire_hazard")
    reviewer, worker = api.login("reviewer"), api.login("wanggeyuan")
    move(api, reviewer, case_id, "accept")
    move(api, reviewer, case_id, "assign", assignee="wanggeyuan")
    move(api, worker, case_id, "start")
    move(api, worker, case_id, "resolve", note={"text": f"已劝离电动车并张贴告知 {tag}"})
    move(api, reviewer, case_id, "verify_close")

    field = phone.new_page()
    log_in(field, "zhiyuanzhe")
    field.goto("/#tasks")
    field.locator(f"[data-group=my_reports] [data-case='{case_id}']").click()
    field.wait_for_selector("[data-testid=case-state][data-state=closed]")
    field.wait_for_selector("[data-testid=outcome]")
    assert field.inner_text("[data-testid=resolution-note]") == f"已劝离电动车并张贴告知 {tag}"
    assert "已销号" in field.inner_text("[data-testid=outcome]")
    assert "张网格员" in field.inner_text("[data-testid=field-timeline]")  # who did it, by name
    # a closed case offers nothing to do
    assert field.locator("#note-form, #answer-form, [data-action=start], [data-action=resolve]").count() == 0

    field.goto("/#me")
    field.wait_for_selector("[data-testid=points]")
    ledger = api.get(api.login("zhiyuanzhe"), "/api/v1/points/ledger")
    assert field.inner_text("[data-testid=points-total]") == f"累计 {ledger['total']} 分"
    assert ledger["entries"][0]["case_id"] == case_id
    first = field.locator("[data-testid=points-entry]").first.inner_text()
    assert "上报被受理" in first and "+10" in first


def test_the_assignee_picker_shows_names_and_workload_and_reject_asks_first(desk, api):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    to_assign = report(api, "wanggeyuan", f"占道经营 {tag}", risk="yellow")
    to_reject = report(api, "wanggeyuan", f"重复上报 {tag}", risk="blue")
    reviewer = api.login("reviewer")
    move(api, reviewer, to_assign, "accept")

    page = desk.new_page()
    log_in_reviewer(page)
    page.goto(f"/#review/{to_assign}")
    page.wait_for_selector("[data-testid=review-state][data-state=accepted]")
    page.click("#act-buttons [data-act=assign]")
    picker = page.locator("[data-testid=assignee-picker]")
    picker.wait_for()
    options = [o.strip() for o in picker.locator("option").all_inner_texts()]
    assert any(o.startswith("张网格员") and "在办" in o for o in options), options
    assert not any("wanggeyuan" in o for o in options), options  # names, never logins
    assert page.locator("[data-testid=assignee-picker] optgroup").first.get_attribute("label") == "本网格"
    assert "办结时限" in page.inner_text("[data-testid=assign-deadline]")
    page.select_option("#act-assignee", "wanggeyuan")
    page.click("[data-act-confirm=assign]")
    page.wait_for_selector("[data-testid=review-state][data-state=assigned]")
    assert api.get(reviewer, f"/api/v1/cases/{to_assign}")["assignee"] == "wanggeyuan"
    assert page.inner_text("[data-testid=review-assignee]") == "张网格员"

    # reject: asked first; cancelled, nothing happens
    page.goto(f"/#review/{to_reject}")
    page.wait_for_selector("[data-testid=review-state][data-state=reported]")
    page.click("#act-buttons [data-act=reject]")
    assert "确定不予受理" in page.inner_text("[data-testid=act-confirm-text]")
    page.click("[data-action=act-cancel]")
    assert api.get(reviewer, f"/api/v1/cases/{to_reject}")["state"] == "reported"
    assert act(page, "reject", reason="与已有案件重复") == "applied"
    page.wait_for_selector("[data-testid=review-state][data-state=rejected]")
    assert api.get(reviewer, f"/api/v1/cases/{to_reject}")["state"] == "rejected"
