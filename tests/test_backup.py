"""``flask backup create`` while a phone keeps syncing to a real gunicorn, then ``flask backup restore``
into a fresh database and media directory: the counts match the manifest, a case page and its photo are
served by the restored app, and the restored database is sound. Runs on the suite's engine."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "faults"))

from factories import TEST_USERS  # noqa: E402
from faultkit import check_database, check_media, photo_set  # noqa: E402
from helpers import note_op, report_op  # noqa: E402
from server import ApiClient, NoAnswer, start_server  # noqa: E402

pytestmark = pytest.mark.slow


def _restored_app(url: str, media_dir: Path, instance_tmp: Path):
    from app import create_app
    from app.regions.services import invalidate_index

    invalidate_index()
    app = create_app({
        "TESTING": True, "DATABASE_URL": url, "MEDIA_DIR": str(media_dir),
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
        "JWT_SECRET_KEY": "test-jwt-secret-key-0123456789abcdef0123456789",
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    return app  # its rate-limit counters are in that database (empty until restored): nothing to reset


def _login(client, username: str) -> dict:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": TEST_USERS[username][2],
                                                "device_id": f"backup-test-{username}"})
    assert r.status_code == 200, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['access_token']}"}


def test_backup_while_syncing_then_restore(app, client, runner, database_url, empty_database_url, db_kind,
                                           tmp_path):
    started = time.monotonic()
    # A few synced cases with a real photo.
    headers = _login(client, "wanggeyuan")
    photo = photo_set(1, f"backup-{db_kind}")[0]
    sha = hashlib.sha256(photo).hexdigest()
    assert client.put(f"/api/v1/media/{sha}", data=photo, headers=headers).status_code == 201
    seeded = [report_op(description=f"备份前上报{i}", photos=[sha] if i == 0 else []) for i in range(3)]
    r = client.post("/api/v1/sync", headers=headers, json={"device_id": "backup-test-wanggeyuan", "ops": seeded})
    assert [x["status"] for x in r.get_json()["results"]] == ["applied"] * 3
    case_id = seeded[0]["report"]["id"]

    # A phone keeps syncing through a real server while the backup runs.
    server = start_server(database_url, tmp_path, workers=1, worker_class="gthread", threads=2)
    stop, synced, errors, retried = threading.Event(), [], [], []

    def writer():
        phone = ApiClient(server.url, "worker_a2", TEST_USERS["worker_a2"][2], "backup-writer", timeout=10)
        i = 0
        try:
            while not stop.is_set():
                op = report_op(micro_grid="3303810010010201", lat=27.7437, lon=120.5907,
                               description=f"备份期间上报{i}")
                batch = [op, note_op(op["report"]["id"], text=f"补充{i}")]
                while not stop.is_set():  # like a phone: what got no answer or "retry" is sent again
                    try:
                        results = phone.sync(batch)["results"]
                    except NoAnswer:
                        continue
                    if all(x["status"] != "retry" for x in results):
                        break
                    retried.append(results)
                    time.sleep(0.1)
                else:
                    return
                assert {x["status"] for x in results} <= {"applied", "duplicate"}, results
                synced.append(i)
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    backup_dir = tmp_path / "backup"
    try:
        thread.start()
        while len(synced) < 3 and thread.is_alive():
            time.sleep(0.02)
        before = len(synced)
        result = runner.invoke(args=["backup", "create", str(backup_dir)])
        assert result.exit_code == 0, result.output
        while len(synced) < before + 3 and thread.is_alive():
            time.sleep(0.02)
        during = len(synced) - before
    finally:
        stop.set()
        thread.join(15)
        server.stop()
    assert not errors, repr(errors)
    assert during >= 3  # the writer went on while (and after) the backup ran

    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["engine"] == db_kind
    assert manifest["counts"]["photos"] == 1 and manifest["counts"]["cases"] >= 3
    assert manifest["media"]["copied"] and manifest["media"]["missing"] == []
    assert {f"media/thumb/{sha[:2]}/{sha[2:4]}/{sha}.jpg", f"media/original/{sha[:2]}/{sha[2:4]}/{sha}"} \
        <= set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((backup_dir / name).read_bytes()).hexdigest() == digest
    # A second backup into the same directory is refused.
    assert runner.invoke(args=["backup", "create", str(backup_dir)]).exit_code != 0

    # Restore into a fresh, empty database and media directory.
    media = tmp_path / "restored-media"
    restored = _restored_app(empty_database_url, media, tmp_path)
    try:
        result = restored.test_cli_runner().invoke(args=["backup", "restore", str(backup_dir)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])
        assert summary["rows"] == sum(manifest["counts"].values())
        from app.backup.services import database_counts

        assert database_counts(restored.config["SQLALCHEMY_DATABASE_URI"]) == manifest["counts"]

        # Not into a database that has data, unless forced.
        result = restored.test_cli_runner().invoke(args=["backup", "restore", str(backup_dir)])
        assert result.exit_code != 0 and "not empty" in result.output
        result = restored.test_cli_runner().invoke(args=["backup", "restore", str(backup_dir), "--force"])
        assert result.exit_code == 0, result.output

        # The restored app serves the case and its photo.
        rc = restored.test_client()
        reviewer = _login(rc, "reviewer")
        page = rc.get(f"/api/v1/cases/{case_id}", headers=reviewer)
        assert page.status_code == 200, page.get_json()
        assert page.get_json()["id"] == case_id
        thumb = rc.get(f"/api/v1/media/{sha}?variant=thumb", headers=reviewer)
        assert thumb.status_code == 200 and thumb.data[:2] == b"\xff\xd8"
        original_thumb = (Path(app.config["MEDIA_DIR"]) / f"thumb/{sha[:2]}/{sha[2:4]}/{sha}.jpg").read_bytes()
        assert thumb.data == original_thumb
    finally:
        from app.extensions import db

        with restored.app_context():
            db.session.remove()
            db.engine.dispose()
    restored_url = restored.config["SQLALCHEMY_DATABASE_URI"]
    check_database(restored_url, db_kind)
    check_media(restored_url, media, {sha})
    print(f"\n{db_kind}: backup of {sum(manifest['counts'].values())} rows while {during} batches synced "
          f"({len(retried)} answered retry), "
          f"{time.monotonic() - started:.1f}s")
