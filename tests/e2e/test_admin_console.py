"""The admin console in a real Chromium on a phone-sized page: an admin checks a 50-row roster with 3 bad rows
(the check names exactly those), imports the fixed file, and a new grid worker activates with their code and
files a report."""

from __future__ import annotations

import csv
import io

from pwa_helpers import INSIDE
from test_field_app import capture, until, wait_all_sent

PATH_A1 = "安阳街道/万松社区/万松社区第1网格"
HEADER = ["username", "display_name", "phone", "role", "region"]


def roster(bad: bool) -> bytes:
    rows = [[f"e2egw{i:02d}", f"新网格员{i:02d}", f"1390000{i:04d}", "网格员", PATH_A1] for i in range(50)]
    if bad:
        rows[4][4] = "安阳街道/没有这个社区"  # row 6: unknown region
        rows[9][2] = "12345"  # row 11: bad phone
        rows[19][3] = "队长"  # row 21: bad role
    out = io.StringIO()
    csv.writer(out).writerows([HEADER, *rows])
    return out.getvalue().encode()


def choose(page, data: bytes):
    page.set_input_files("#roster-file", files=[{"name": "花名册.csv", "mimeType": "text/csv", "buffer": data}])


def test_admin_imports_a_roster_and_a_new_worker_activates(phone, browser, live_server):
    page = phone.new_page()
    page.goto("/")
    page.fill("#username", "admin")
    page.fill("#password", "Gridcase-admin-2026")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-tab=admin]")
    page.click("[data-tab=admin]")
    page.click("[data-testid=admin-people]")
    page.wait_for_selector(".person")
    page.click("text=导入花名册")
    choose(page, roster(bad=True))
    page.click("[data-action=check]")
    page.wait_for_selector("#roster-problems li")
    rows = page.eval_on_selector_all("#roster-problems li", "els => els.map((e) => [e.dataset.row, e.dataset.code])")
    assert rows == [["6", "unknown_region"], ["11", "bad_phone"], ["21", "bad_role"]]
    assert page.is_disabled("#roster-import")
    choose(page, roster(bad=False))
    page.click("[data-action=check]")
    page.wait_for_selector("text=50 行全部无误")
    page.click("#roster-import")
    page.wait_for_selector("[data-testid=imported]")
    assert "已导入 50 人" in page.inner_text("[data-testid=imported]")
    page.wait_for_selector(".person[data-username^=e2egw]")  # the list is drawn again with the new people
    link = page.locator("[data-testid=download-codes]")
    assert link.get_attribute("download") == "activation-codes.csv"
    with page.expect_download() as download:
        link.dispatch_event("click")
    sheet = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
    assert len(sheet) == 51 and sheet[8][0] == "e2egw07"
    code = sheet[8][2]
    # the list shows names, role labels and place paths, not codes
    page.fill("#people-q", "e2egw07")
    page.press("#people-q", "Enter")
    page.wait_for_selector(".person[data-username=e2egw07]")
    text = page.inner_text(".person[data-username=e2egw07]")
    assert "新网格员07" in text and "网格员" in text and PATH_A1 in text and "未激活" in text
    page.click("[data-tab=admin]")
    page.click("[data-testid=admin-audit]")
    page.wait_for_selector(".audit-event")
    assert "导入花名册 50 人" in page.inner_text(".audit-event")

    worker = browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True,
                                 locale="zh-CN", geolocation=INSIDE, permissions=["geolocation"],
                                 base_url=live_server.url)
    worker.set_default_timeout(20_000)
    try:
        p = worker.new_page()
        p.goto("/")
        p.click("#activate-link")
        p.wait_for_selector("#code")
        p.fill("#username", "e2egw07")
        p.fill("#code", code)
        p.fill("#password", "My-new-password-7")
        p.click("button[type=submit]")
        p.wait_for_selector("[data-action=cat]")
        until(p, "() => navigator.serviceWorker.controller !== null")
        capture(p, "fire_hazard", "red", "新网格员的第一条上报", "DSCN0010.jpg")
        wait_all_sent(p)
    finally:
        worker.close()
