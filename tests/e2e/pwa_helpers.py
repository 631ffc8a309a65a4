"""What the browser tests share: where things are, the demo users, the phone's settings, the API as a client."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 360, "height": 640}
PASSWORDS = {"wanggeyuan": "Gridcase-grid-2026", "zhiyuanzhe": "Gridcase-volunteer-2026",
             "reviewer": "Gridcase-review-2026"}
# Inside micro-grid 3303810010010101 (grid 33038100100101: wanggeyuan's and zhiyuanzhe's)
INSIDE = {"latitude": 27.7437, "longitude": 120.5843, "accuracy": 8}
_n = itertools.count()


def next_id() -> int:
    return next(_n)


class Api:
    """The server seen through its API (as a reviewer, or as a second phone)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def login(self, username: str, device_id: str | None = None) -> dict:
        r = self.http.post(self.base_url + "/api/v1/auth/login", json={
            "username": username, "password": PASSWORDS[username],
            "device_id": device_id or f"e2e-api-{username}-{next(_n)}"})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}", "_device": r.json()}

    def get(self, headers, path, **params):
        r = self.http.get(self.base_url + path, params=params, headers={"Authorization": headers["Authorization"]})
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, headers, path, body):
        r = self.http.post(self.base_url + path, json=body, headers={"Authorization": headers["Authorization"]})
        assert r.status_code == 200, r.text
        return r.json()


MICRO = "3303810010010101"  # 万松社区第1网格 · 1号微网格 of the demo city


def report_from_another_phone(api, username: str, description: str, *, risk: str = "yellow",
                              category: str = "public_order", device: str | None = None) -> str:
    """A case reported by ``username`` from another phone, through the sync API (state reported, version 1)."""
    device = device or f"e2e-{username}-{uuid.uuid4().hex[:6]}"
    phone = api.login(username, device_id=device)
    case_id = str(uuid.uuid4())
    answer = api.post(phone, "/api/v1/sync", {"device_id": device, "ops": [{
        "op_id": str(uuid.uuid4()), "seq": 1, "type": "report.create", "report": {
            "id": case_id, "category": category, "risk_level": risk, "description": description,
            "micro_grid_id": MICRO, "location": {"lat": INSIDE["latitude"], "lon": INSIDE["longitude"], "accuracy_m": 5},
            "captured_at": "2026-11-22T08:03:11+08:00", "photos": []}}]})
    assert answer["results"][0]["status"] == "applied"
    return case_id
