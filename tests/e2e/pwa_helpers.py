"""What the browser tests share: where things are, the demo users, the phone's settings, the API as a client."""

from __future__ import annotations

import itertools
import os
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
