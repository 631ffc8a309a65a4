"""Building ops the way the PWA does."""

from __future__ import annotations

import hashlib
import itertools
import uuid

from factories import MICRO_A1_1

_seq = itertools.count(1)

# A point well inside micro-grid 3303810010010101 (the south-west corner cell of the demo city).
INSIDE_A1_1 = (27.7437, 120.5843)


def new_id() -> str:
    return str(uuid.uuid4())


def fake_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def report_op(*, micro_grid=MICRO_A1_1, lat=INSIDE_A1_1[0], lon=INSIDE_A1_1[1], category="fire_hazard",
              risk="yellow", description="楼道堆放杂物，堵塞消防通道", photos=(), report_id=None, op_id=None,
              **extra) -> dict:
    report = {"id": report_id or new_id(), "category": category, "risk_level": risk, "description": description,
              "location": {"lat": lat, "lon": lon, "accuracy_m": 8, "crs": "wgs84"},
              "captured_at": "2026-11-22T08:03:11+08:00", "photos": list(photos)}
    if micro_grid is not None:
        report["micro_grid_id"] = micro_grid
    report.update(extra)
    return {"op_id": op_id or new_id(), "seq": next(_seq), "type": "report.create", "report": report}


def update_op(case_id, base_version, changes, op_id=None) -> dict:
    return {"op_id": op_id or new_id(), "seq": next(_seq), "type": "case.update", "case_id": case_id,
            "base_version": base_version, "changes": changes}


def note_op(case_id, text="已到现场查看", photos=(), op_id=None, note_id=None) -> dict:
    return {"op_id": op_id or new_id(), "seq": next(_seq), "type": "case.note", "case_id": case_id,
            "note": {"id": note_id or new_id(), "text": text, "photos": list(photos),
                     "captured_at": "2026-11-22T09:00:00+08:00"}}


def transition_op(case_id, base_version, action, op_id=None, **params) -> dict:
    op = {"op_id": op_id or new_id(), "seq": next(_seq), "type": "case.transition", "case_id": case_id,
          "base_version": base_version, "action": action}
    op.update(params)
    return op


class Phone:
    """A logged-in device that sends batches."""

    def __init__(self, client, auth, username, device_id=None):
        self.client = client
        self.tokens = auth.login(username, device_id=device_id)
        self.device_id = self.tokens["device_id"]
        self.headers = {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def sync(self, *ops, client_time="2026-11-25T08:00:00+00:00", outbox=None, expect=200) -> dict:
        from datetime import datetime, timezone

        body = {"device_id": self.device_id, "ops": list(ops)}
        if client_time == "now":
            body["client_time"] = datetime.now(timezone.utc).isoformat()
        elif client_time:
            body["client_time"] = client_time
        if outbox is not None:
            body["outbox"] = outbox
        r = self.client.post("/api/v1/sync", json=body, headers=self.headers)
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def one(self, op, **kwargs) -> dict:
        return self.sync(op, client_time="now", **kwargs)["results"][0]
