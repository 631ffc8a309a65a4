"""What the fault tests share: real photos made distinct, a phone's HTTP calls, and the checks every fault
test ends with (acknowledged work present exactly once, no orphan photo rows, no corrupt object, a sound
database)."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
# Sound JPEGs of 8-230 kB (fast through the pipeline); the HEIC and multi-MB ones are tested in tests/media.
SMALL_JPEGS = ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg", "DSCN0040.jpg", "landscape_3.jpg",
               "landscape_6.jpg", "portrait_5.jpg", "portrait_8.jpg", "image00971.jpg", "image01088.jpg",
               "45-gps_ifd.jpg", "Canon_40D.jpg"]
KEY_RE = re.compile(r"(original|thumb|display)/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})(\.jpg)?")


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def distinct_jpeg(name: str, tag: str) -> bytes:
    """A real photo with a JPEG comment segment (COM) after SOI: the same pixels, new bytes, new sha256."""
    data = (PHOTOS / name).read_bytes()
    assert data[:2] == b"\xff\xd8", name
    comment = f"gridcase fault test {tag}".encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


_CLEAN: dict[str, bytes] = {}


def clean_jpeg(name: str, tag: str) -> bytes:
    """A photo as the PWA's canvas uploads it (re-encoded, no metadata at all), made distinct by the
    density in its JFIF header: the server keeps it as its own display copy (two objects, not three)."""
    if name not in _CLEAN:
        from PIL import Image, ImageOps

        with Image.open(PHOTOS / name) as img:
            buf = io.BytesIO()
            ImageOps.exif_transpose(img).convert("RGB").save(buf, "JPEG", quality=75)
        _CLEAN[name] = buf.getvalue()
    data = _CLEAN[name]
    assert data[6:11] == b"JFIF\x00" and data[18:20] == b"\x00\x00", name
    density = int(sha256(tag.encode())[:8], 16) | 0x00010001  # two non-zero 16-bit values
    return data[:13] + b"\x00" + density.to_bytes(4, "big") + data[18:]


def photo_set(n: int, prefix: str) -> list[bytes]:
    """``n`` distinct photos: camera files (kept with their EXIF, three objects each) and, every second
    one, clean uploads as the PWA makes (two objects each)."""
    return [(clean_jpeg if i % 2 else distinct_jpeg)(SMALL_JPEGS[i % len(SMALL_JPEGS)], f"{prefix}-{i}")
            for i in range(n)]


# ---------------------------------------------------------------------------------------------- a phone


class Phone:
    """One logged-in phone against a real server; every call may raise requests' errors (the caller retries)."""

    def __init__(self, base_url: str, username: str, password: str, device_id: str | None = None,
                 timeout: float = 10.0):
        self.base_url = base_url
        self.username, self.password = username, password
        self.device_id = device_id or f"fault-{username}-{uuid.uuid4().hex[:8]}"
        self.timeout = timeout
        self.http = requests.Session()
        self.token: str | None = None

    def login(self) -> None:
        r = self.http.post(self.base_url + "/api/v1/auth/login", timeout=self.timeout, json={
            "username": self.username, "password": self.password, "device_id": self.device_id})
        r.raise_for_status()
        self.token = r.json()["access_token"]

    def headers(self, extra: dict | None = None) -> dict:
        if self.token is None:
            self.login()
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def put_photo(self, data: bytes) -> requests.Response:
        return self.http.put(f"{self.base_url}/api/v1/media/{sha256(data)}", data=data, timeout=self.timeout,
                             headers=self.headers({"Content-Type": "image/jpeg"}))

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=self.timeout, headers=self.headers(), **kwargs)

    def sync(self, ops: list[dict], client_time: str | None = "now", outbox: dict | None = None) -> requests.Response:
        body = {"device_id": self.device_id, "ops": ops}
        if client_time == "now":
            body["client_time"] = datetime.now(timezone.utc).isoformat()
        elif client_time:
            body["client_time"] = client_time
        if outbox is not None:
            body["outbox"] = outbox
        return self.http.post(self.base_url + "/api/v1/sync", json=body, timeout=self.timeout,
                              headers=self.headers())


class TusUpload:
    """A resumable upload that survives server restarts: create, then HEAD + PATCH from wherever it got."""

    def __init__(self, phone: Phone, data: bytes, chunk: int = 32 * 1024):
        self.phone, self.data, self.chunk = phone, data, chunk
        self.url: str | None = None

    def _h(self, extra: dict | None = None) -> dict:
        return self.phone.headers({"Tus-Resumable": "1.0.0", **(extra or {})})

    def step(self) -> requests.Response | None:
        """One request. Returns the final answer (200 with the photo's metadata) once done, else None."""
        http, timeout = self.phone.http, self.phone.timeout
        if self.url is None:
            meta = "sha256 " + base64.b64encode(sha256(self.data).encode()).decode()
            r = http.post(self.phone.base_url + "/api/v1/uploads/", timeout=timeout, headers=self._h({
                "Upload-Length": str(len(self.data)), "Upload-Metadata": meta}))
            if r.status_code == 201:
                self.url = r.headers["Location"]
            elif r.status_code < 500:
                raise AssertionError(f"tus create: {r.status_code} {r.text[:300]}")
            return None
        r = http.head(self.url, timeout=timeout, headers=self._h())
        if r.status_code in (404, 410):  # finished by a PATCH whose answer was lost, or expired: start over
            self.url = None
            return None
        if r.status_code != 200:
            return None
        offset = int(r.headers["Upload-Offset"])
        body = self.data[offset:offset + self.chunk]
        r = http.patch(self.url, data=body, timeout=timeout, headers=self._h({
            "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}))
        if r.status_code == 200:
            return r
        if r.status_code in (204, 409) or r.status_code >= 500:
            return None
        raise AssertionError(f"tus patch: {r.status_code} {r.text[:300]}")


# ---------------------------------------------------------------------------------------------- checks


def _engine(database_url: str):
    return create_engine(database_url)


def check_media(database_url: str, media_dir: Path, acked: set[str] = frozenset()) -> dict:
    """No orphan photo rows, no object under a final key with wrong or partial bytes; every acknowledged
    photo present once with its three objects. Returns counts for the test's report."""
    from PIL import Image

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT sha256, size, display_is_original FROM photos")).all()
    finally:
        engine.dispose()
    shas = [r[0] for r in rows]
    assert len(shas) == len(set(shas))
    assert acked <= set(shas), f"acknowledged photos missing: {sorted(acked - set(shas))[:5]}"
    finals, leftovers = {}, []
    for path in media_dir.rglob("*") if media_dir.exists() else []:
        if not path.is_file():
            continue
        rel = path.relative_to(media_dir).as_posix()
        m = KEY_RE.fullmatch(rel)
        if m:
            finals[rel] = path
            continue
        # Only temp files may remain: spooled uploads, variant temps, tus parts, dot-temps beside objects.
        assert rel.startswith(("tmp/", "tus/")) or path.name.startswith(".tmp-"), rel
        leftovers.append(rel)
    for rel, path in finals.items():
        m = KEY_RE.fullmatch(rel)
        variant, digest = m[1], m[4]
        data = path.read_bytes()
        if variant == "original":
            assert sha256(data) == digest, f"{rel} holds other bytes than its name says"
        else:
            with Image.open(io.BytesIO(data)) as im:  # a half-written JPEG fails here
                im.load()
    for sha, size, display_is_original in rows:
        for variant, suffix in (("original", ""), ("thumb", ".jpg"), ("display", ".jpg")):
            key = f"{variant}/{sha[:2]}/{sha[2:4]}/{sha}{suffix}"
            if variant == "display" and display_is_original:
                continue  # a clean upload: its display copy is the original's object
            assert key in finals, f"orphan photo row: {sha} has no {variant}"
        assert finals[f"original/{sha[:2]}/{sha[2:4]}/{sha}"].stat().st_size == size
    return {"photos": len(rows), "objects": len(finals), "leftovers": len(leftovers)}


def check_database(database_url: str, db_kind: str) -> None:
    """The database is sound: PRAGMA integrity_check on SQLite, validated constraints on PostgreSQL, and
    on both: every case has its events 1..version without gaps, each op's effects logged once."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            def scalar(sql):
                return conn.execute(text(sql)).scalar()

            def rows(sql):
                return conn.execute(text(sql)).all()

            if db_kind == "sqlite":
                assert scalar("PRAGMA integrity_check") == "ok"
                assert rows("PRAGMA foreign_key_check") == []
            else:
                assert scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated") == 0
                # Foreign keys hold (PostgreSQL enforces them; check the ones the tests lean on anyway).
                assert scalar("SELECT count(*) FROM case_events e LEFT JOIN cases c ON c.id = e.case_id "
                              "WHERE c.id IS NULL") == 0
                assert scalar("SELECT count(*) FROM case_photos p LEFT JOIN cases c ON c.id = p.case_id "
                              "WHERE c.id IS NULL") == 0
            assert scalar("SELECT count(*) FROM cases c WHERE NOT EXISTS "
                          "(SELECT 1 FROM case_events e WHERE e.case_id = c.id)") == 0
            assert rows("SELECT c.id, c.version, count(*), max(e.version) FROM cases c "
                        "JOIN case_events e ON e.case_id = c.id GROUP BY c.id, c.version "
                        "HAVING count(*) <> c.version OR max(e.version) <> c.version") == []
            # One event per op (a merge also writes "merged_in" on the surviving case).
            assert rows("SELECT op_id FROM case_events WHERE op_id IS NOT NULL "
                        "AND action <> 'merged_in' GROUP BY op_id HAVING count(*) > 1") == []
    finally:
        engine.dispose()


def check_ops(database_url: str, acked: dict[str, str]) -> None:
    """Every acknowledged op (op_id -> first status) is in the op log exactly once, with one event at most."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            logged = dict(conn.execute(text("SELECT op_id, status FROM op_log")).all())
            held = {r[0] for r in conn.execute(text("SELECT op_id FROM held_ops")).all()}
            events = dict(conn.execute(text(
                "SELECT op_id, count(*) FROM case_events WHERE op_id IS NOT NULL GROUP BY op_id")).all())
    finally:
        engine.dispose()
    for op_id, status in acked.items():
        if status == "held":
            assert op_id in held or op_id in logged, op_id
            continue
        assert op_id in logged, f"acknowledged op {op_id} ({status}) is not in the op log"
        if logged[op_id] in ("applied", "conflict"):
            assert events.get(op_id) == 1, (op_id, events.get(op_id))


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def problem_json(response) -> dict:
    assert response.headers.get("Content-Type", "").startswith("application/problem+json"), response.headers
    return json.loads(response.content)

