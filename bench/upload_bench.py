"""PUT upload throughput over loopback against gunicorn (2 workers) on SQLite, as in production.

    .venv/bin/python bench/upload_bench.py [--photos 24] [--clients 2]

Two figures: (1) the transfer path alone — each body is streamed to disk and hashed, then refused for a
wrong hash (422), so no decoding happens; (2) whole uploads of distinct 12 MP phone-sized JPEGs (~4 MB),
through the full pipeline (hash, decode in draft mode, EXIF, two derivatives, store, row). Target for the
PUT path: >= 100 MB/s over loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import ServerProcess  # noqa: E402


def machine() -> str:
    from machine import describe

    return describe()


def make_photos(n: int) -> list[bytes]:
    from PIL import Image, ImageDraw

    with Image.open(ROOT / "tests" / "fixtures" / "photos" / "corrupted.jpg") as src:
        src.load()
        base = src.convert("RGB").resize((4000, 3000))
    out = []
    for i in range(n):
        img = base.copy()
        ImageDraw.Draw(img).text((40 + i * 7, 40), f"photo {i}", fill=(255, 255, 0))  # distinct bytes
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def run(url: str, token: str, bodies: list[bytes], clients: int, wrong_hash: bool) -> tuple[float, int, list]:
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    statuses = []

    def worker():
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop()
            digest = "0" * 64 if wrong_hash else hashlib.sha256(body).hexdigest()
            r = session.put(f"{url}/api/v1/media/{digest}", data=body, timeout=120,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
            with lock:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, sum(map(len, bodies)), statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        url_db = f"sqlite:///{tmp_path / 'bench.sqlite3'}"
        env = {**os.environ, "GRIDCASE_DATABASE_URL": url_db, "FLASK_DEBUG": "1",
               "GRIDCASE_MEDIA_DIR": str(tmp_path / "media")}
        for cmd in (["db", "upgrade"], ["demo", "seed", "--no-cases"]):
            subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *cmd], cwd=ROOT, env=env, check=True,
                           capture_output=True)
        server = ServerProcess(url_db, tmp_path, workers=2)
        server.start()
        try:
            r = requests.post(f"{server.url}/api/v1/auth/login", json={
                "username": "wanggeyuan", "password": "Gridcase-grid-2026", "device_id": "bench-upload-01"})
            token = r.json()["access_token"]
            print(f"making {args.photos} distinct 12 MP JPEGs …")
            bodies = make_photos(args.photos)
            mb = sum(map(len, bodies)) / 1e6
            print(f"  {mb:.0f} MB in all, {mb / len(bodies):.1f} MB each")
            seconds, size, statuses = run(server.url, token, bodies, args.clients, wrong_hash=True)
            assert set(statuses) == {422}, statuses
            print(f"transfer path (stream to disk + sha256, refused by hash): {size / 1e6 / seconds:.0f} MB/s "
                  f"({args.clients} clients)")
            seconds, size, statuses = run(server.url, token, bodies, args.clients, wrong_hash=False)
            assert set(statuses) == {201}, statuses
            print(f"full uploads (pipeline + store): {size / 1e6 / seconds:.0f} MB/s, "
                  f"{len(bodies) / seconds:.1f} photos/s ({args.clients} clients)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
