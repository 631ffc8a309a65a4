"""The field app's outbox drain rate, end to end: Chromium running the real PWA against gunicorn over loopback.

    .venv/bin/python bench/pwa_bench.py [--reports 200] [--workers 2] [--photo-px 1600x1200]

What it does:
  1. starts gunicorn (``--workers`` sync workers) on a fresh SQLite database (``flask db upgrade`` +
     ``flask demo seed``), exactly as the browser tests do (tests/server.py);
  2. opens the PWA in the system Chromium (/usr/bin/chromium, 360 × 640) and logs in as ``wanggeyuan``
     through the login form;
  3. goes offline (``context.set_offline(True)``) and queues ``--reports`` reports with one photo each.
     They are INJECTED into the outbox through the page's own modules (``/js/db.js``, ``/js/core/outbox.js``,
     via ``page.evaluate``), in the shape the capture view's save writes (a photo Blob in the ``photos``
     store, a ``report.create`` item with its op_id, seq and owner), not typed into the form: the UI path
     costs seconds per report and would measure Playwright, not the sync. Each photo is a distinct JPEG
     made in the page on an OffscreenCanvas at ``--photo-px`` (1600 px: the size the app resizes to);
  4. goes online — the page's ``online`` handler starts the sync by itself (photos first, one PUT each,
     then ops in batches of 50) — and times from going online until every item is ``sent`` and every
     photo uploaded;
  5. checks the server: every case there, none missing its photo. Prints reports/s and the machine.

Target: >= 20 reports/s over loopback.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from pwa_helpers import CHROMIUM, CHROMIUM_ARGS, INSIDE, PASSWORDS, PHONE
from server import ServerProcess

INJECT = """async ({ n, w, h, tag }) => {
  const store = await import("/js/db.js");
  const { newItem } = await import("/js/core/outbox.js");
  const session = await store.getMeta("session");
  const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const canvas = new OffscreenCanvas(w, h);
  const g = canvas.getContext("2d");
  const cats = ["fire_hazard", "sanitation", "road_safety", "public_order", "gas_safety"];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const grad = g.createLinearGradient(0, 0, w, h);
    grad.addColorStop(0, `hsl(${(i * 37) % 360} 60% 55%)`);
    grad.addColorStop(1, `hsl(${(i * 71 + 120) % 360} 50% 35%)`);
    g.fillStyle = grad; g.fillRect(0, 0, w, h);
    g.fillStyle = "#fff"; g.font = "bold 96px sans-serif"; g.fillText(`${tag} #${i}`, 60, 160);
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.85 });
    const sha256 = hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
    bytes += blob.size;
    await store.putPhoto({ sha256, blob, size: blob.size, exif: {}, state: "waiting", progress: 0, created_at: Date.now() });
    const report = { id: crypto.randomUUID(), category: cats[i % cats.length], risk_level: ["red", "yellow", "blue"][i % 3],
      description: `压测上报 ${tag} #${i}`, captured_at: new Date().toISOString(), photos: [sha256],
      location: { lat: 27.7437 + (i % 20) * 0.00002, lon: 120.5843 + Math.floor(i / 20) * 0.00002,
                  accuracy_m: 8, crs: "wgs84" },
      micro_grid_id: "3303810010010101" };
    const item = newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(),
      type: "report.create", body: { report }, photos: [sha256], now: Date.now(), label: `bench ${i}` });
    await store.putItems([{ ...item, owner: session.user.username }]);
  }
  return bytes;
}"""

PROGRESS = """async () => {
  const store = await import("/js/db.js");
  const items = await store.allItems();
  const states = {};
  for (const i of items) states[i.state] = (states[i.state] || 0) + 1;
  const photos = await store.allPhotos();
  return { states, photos_left: photos.filter((p) => p.state !== "sent").length,
           failed: photos.filter((p) => p.state === "failed").length };
}"""


from machine import machine  # noqa: E402  (bench/machine.py: one description of the machine)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--photo-px", default="1600x1200")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    w, h = (int(x) for x in args.photo_px.split("x"))
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="pwa-bench-") as tmp:
        server = ServerProcess(f"sqlite:///{tmp}/gridcase.sqlite3", Path(tmp), workers=args.workers,
                               extra_env={"GRIDCASE_LOGIN_RATE_LIMIT": "200 per minute"})
        env = server.env()
        for cmd in (["db", "upgrade"], ["demo", "seed", "--no-cases"]):
            subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *cmd], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        server.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                              geolocation=INSIDE, permissions=["geolocation"], base_url=server.url)
                page = context.new_page()
                page.goto("/")
                page.fill("#username", "wanggeyuan")
                page.fill("#password", PASSWORDS["wanggeyuan"])
                page.click("button[type=submit]")
                page.wait_for_selector("[data-action=cat]", timeout=30_000)
                deadline = time.monotonic() + 30
                while not page.evaluate("() => navigator.serviceWorker.controller !== null"):  # the CSP forbids
                    if time.monotonic() > deadline:                                              # wait_for_function's eval
                        raise SystemExit("the service worker never took control")
                    time.sleep(0.1)
                page.wait_for_timeout(500)  # the login's own first sync settles

                context.set_offline(True)
                tag = f"b{int(time.time())}"
                t_gen = time.perf_counter()
                photo_bytes = page.evaluate(INJECT, {"n": args.reports, "w": w, "h": h, "tag": tag})
                gen_s = time.perf_counter() - t_gen
                before = page.evaluate(PROGRESS)
                assert before["states"] == {"waiting": args.reports}, before

                t0 = time.perf_counter()
                context.set_offline(False)  # the page's "online" handler starts the sync
                photos_done_s = None
                while True:
                    prog = page.evaluate(PROGRESS)
                    if photos_done_s is None and prog["photos_left"] == 0:
                        photos_done_s = time.perf_counter() - t0
                    done = prog["states"].get("sent", 0) + prog["states"].get("held", 0)
                    if done == args.reports and prog["photos_left"] == 0:
                        break
                    if time.perf_counter() - t0 > args.timeout:
                        raise SystemExit(f"timed out: {prog}")
                    time.sleep(0.2)  # light polling: the page's IndexedDB is what is being measured
                elapsed = time.perf_counter() - t0
                browser.close()

            # the server has every case, each with its photo
            r = requests.post(server.url + "/api/v1/auth/login", json={
                "username": "reviewer", "password": PASSWORDS["reviewer"], "device_id": "bench-reviewer-0001"})
            token = {"Authorization": f"Bearer {r.json()['access_token']}"}
            seen, missing, cursor = 0, 0, None
            while True:
                params = {"q": tag, "limit": 200, **({"cursor": cursor} if cursor else {})}
                res = requests.get(server.url + "/api/v1/cases", params=params, headers=token)
                res.raise_for_status()
                seen += len(res.json())
                cursor = res.headers.get("X-Next-Cursor")
                if not cursor:
                    break
            sample = requests.get(server.url + "/api/v1/cases", params={"q": tag, "limit": 20}, headers=token).json()
            for c in sample:
                missing += len(requests.get(server.url + f"/api/v1/cases/{c['id']}", headers=token).json()["missing_photos"])
        finally:
            server.stop()

    rate = args.reports / elapsed
    m = machine()
    print(f"reports queued offline : {args.reports} (one {w}x{h} JPEG each, {photo_bytes / args.reports / 1024:.0f} KB avg, "
          f"{photo_bytes / 1e6:.1f} MB total; made and injected in {gen_s:.1f} s, not timed)")
    print("injection              : through the page's own modules (db.js putPhoto/putItems, core/outbox.js newItem)")
    print(f"server                 : gunicorn, {args.workers} sync workers, SQLite, loopback")
    print(f"online → outbox empty  : {elapsed:.2f} s")
    print(f"  photos all uploaded  : {photos_done_s:.2f} s; ops after that: {elapsed - photos_done_s:.2f} s")
    print(f"throughput             : {rate:.1f} reports/s  ({photo_bytes / elapsed / 1e6:.1f} MB/s of photos)  "
          f"[target >= 20 reports/s: {'met' if rate >= 20 else 'NOT met'}]")
    print(f"server check           : {seen} cases found, {missing} photos missing in a sample of {len(sample)}")
    print(f"machine                : {m['platform']} | {m['cpu']} | nproc {m['nproc']} | Python {m['python']}")
    return 0 if seen == args.reports and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
