"""Consistent backups of the database and the photos, and restores into an empty database.

A backup is a directory:

    manifest.json            written last: a directory without it is an unfinished backup
    database.sqlite3         SQLite, through the online backup API (consistent while the app writes)
    database.pgdump          PostgreSQL, ``pg_dump --format=custom`` of one exported snapshot
    media/<key>              every object of every photo row in that snapshot (local storage)

The manifest holds the time, the engine, the Alembic revision, the row count of every table *as of the
snapshot* (counted inside it) and the sha256 of every file. The database is copied first and the media
after: objects are written before their row and never changed, so every row in the copy finds its objects.

Restore refuses a database that has tables unless forced, verifies every file's sha256 first, loads the
database (file copy / ``pg_restore --single-transaction``), puts the objects back through the configured
storage, and compares the restored row counts with the manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from app.media.storage import key_for, storage_from_config, stored_variants

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"


class BackupError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------- helpers


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def engine_of(database_uri: str) -> str:
    backend = make_url(database_uri).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"unsupported database engine: {backend}")
    return backend


def _sqlite_path(database_uri: str) -> Path:
    path = make_url(database_uri).database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(path)


def _libpq(database_uri: str) -> tuple[str, dict]:
    """(conninfo URL without the password, environment with PGPASSWORD) for pg_dump / pg_restore / psycopg:
    the password never appears on a command line (``ps`` shows those to every user)."""
    url = make_url(database_uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def find_pg_tool(name: str, bindir: str | None = None) -> str:
    """The newest ``pg_dump`` / ``pg_restore``: GRIDCASE_PG_BINDIR, Debian's /usr/lib/postgresql/*/bin
    (newest first: pg_dump must not be older than the server), then PATH."""
    candidates = [os.path.join(bindir, name)] if bindir else []

    def version(path: str) -> tuple:
        part = Path(path).parent.parent.name
        return tuple(int(p) if p.isdigit() else -1 for p in part.split("."))

    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version, reverse=True)
    candidates += [p for p in [shutil.which(name)] if p]
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise BackupError(f"{name} not found (install postgresql-client or set GRIDCASE_PG_BINDIR)")


def _run(args: list[str], env: dict) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _sqlite_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _pg_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' ORDER BY table_name")]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _counts(conn, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {_quote(t)}").fetchone()[0] for t in tables}


def _revision(conn, tables: list[str]) -> str | None:
    if "alembic_version" not in tables:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def _photo_hashes(conn, tables: list[str]) -> list[tuple[str, bool]]:
    """(sha256, display_is_original) of every photo row: which objects it stands for."""
    if "photos" not in tables:
        return []
    return [(r[0], bool(r[1])) for r in conn.execute(
        "SELECT sha256, display_is_original FROM photos ORDER BY sha256")]


# ---------------------------------------------------------------------------------------------- create


def create_backup(config, dest: str | os.PathLike) -> dict:
    """Back up the database named by ``config`` and its photos into ``dest`` (a new or empty directory).
    Returns the manifest. Raises BackupError."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    uri = config["SQLALCHEMY_DATABASE_URI"]
    engine = engine_of(uri)
    if engine == "sqlite":
        counts, revision, hashes = _backup_sqlite(_sqlite_path(uri), dest / SQLITE_FILE)
        files = [SQLITE_FILE]
    else:
        counts, revision, hashes = _backup_postgresql(uri, dest / PG_FILE, config.get("PG_BINDIR") or None)
        files = [PG_FILE]
    media = _backup_media(config, hashes, dest)
    files += media.pop("files")
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "engine": engine,
        "alembic_revision": revision,
        "counts": counts,
        "media": media,
        "files": {name: file_sha256(dest / name) for name in files},
    }
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest / MANIFEST)
    return manifest


def _backup_sqlite(source: Path, target: Path) -> tuple[dict, str | None, list[str]]:
    if not source.exists():
        raise BackupError(f"no database at {source}")
    src = sqlite3.connect(source, timeout=30)  # reads only (a mode=ro connection cannot open an idle WAL file)
    dst = sqlite3.connect(target)
    try:
        src.execute("PRAGMA busy_timeout = 30000")
        # One step (pages=-1): the copy is made inside one read transaction, i.e. of one snapshot; in WAL
        # mode the app's writers go on meanwhile.
        src.backup(dst)
    finally:
        src.close()
    try:
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the backup copy fails PRAGMA integrity_check: {check}")
        tables = _sqlite_tables(dst)
        return _counts(dst, tables), _revision(dst, tables), _photo_hashes(dst, tables)
    finally:
        dst.close()


def _backup_postgresql(uri: str, target: Path, bindir: str | None) -> tuple[dict, str | None, list[str]]:
    import psycopg

    conninfo, env = _libpq(uri)
    pg_dump = find_pg_tool("pg_dump", bindir)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        # Count inside the snapshot that pg_dump dumps: the manifest's counts are those of the dump.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        tables = _pg_tables(conn)
        counts, revision, hashes = _counts(conn, tables), _revision(conn, tables), _photo_hashes(conn, tables)
        _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={target}", "--no-password",
              f"--dbname={conninfo}"], env)
        conn.rollback()
    return counts, revision, hashes


def _backup_media(config, hashes: list[tuple[str, bool]], dest: Path) -> dict:
    kind = (config.get("MEDIA_STORAGE") or "local").strip().lower()
    if kind != "local":
        # Objects in S3 are protected where they live (bucket versioning, replication to a second region or
        # bucket, see docs/backup.md); copying a whole bucket per backup is not the way.
        return {"storage": kind, "copied": False, "photos": len(hashes), "files": [], "missing": []}
    root = Path(config["MEDIA_DIR"])
    files, missing = [], []
    for sha, display_is_original in hashes:
        for variant in stored_variants(display_is_original):
            key = key_for(variant, sha)
            source = root / key
            if not source.is_file():
                missing.append(key)
                continue
            target = dest / "media" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            files.append(f"media/{key}")
    return {"storage": "local", "copied": True, "photos": len(hashes), "files": files, "missing": missing}


# ---------------------------------------------------------------------------------------------- restore


def read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST}: not a backup, or an unfinished one") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return manifest


def verify_files(src: Path, manifest: dict) -> None:
    bad = [name for name, digest in manifest["files"].items()
           if not (src / name).is_file() or file_sha256(src / name) != digest]
    if bad:
        raise BackupError(f"{len(bad)} file(s) missing or damaged in the backup, e.g. {bad[:3]}")


def database_tables(uri: str) -> list[str]:
    if engine_of(uri) == "sqlite":
        path = _sqlite_path(uri)
        if not path.exists():
            return []
        conn = sqlite3.connect(path)
        try:
            return _sqlite_tables(conn)
        finally:
            conn.close()
    import psycopg

    conninfo, env = _libpq(uri)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        return _pg_tables(conn)


def database_counts(uri: str) -> dict[str, int]:
    if engine_of(uri) == "sqlite":
        conn = sqlite3.connect(_sqlite_path(uri))
        try:
            return _counts(conn, _sqlite_tables(conn))
        finally:
            conn.close()
    import psycopg

    conninfo, env = _libpq(uri)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        return _counts(conn, _pg_tables(conn))


def restore_backup(config, src: str | os.PathLike, *, force: bool = False) -> dict:
    """Restore the backup in ``src`` into the database and media store named by ``config``.

    Refuses (BackupError) a database that has tables unless ``force`` (then they are dropped first), a
    backup of another engine, a damaged backup, and restored counts that differ from the manifest.
    The caller disposes of its own connections first. Returns a summary."""
    src = Path(src)
    manifest = read_manifest(src)
    uri = config["SQLALCHEMY_DATABASE_URI"]
    engine = engine_of(uri)
    if manifest["engine"] != engine:
        raise BackupError(f"this is a {manifest['engine']} backup; the target database is {engine}")
    verify_files(src, manifest)
    existing = database_tables(uri)
    if existing and not force:
        raise BackupError(f"the target database is not empty ({len(existing)} tables): restore into an empty "
                          "database, or pass --force to replace its contents")
    if engine == "sqlite":
        _restore_sqlite(src / SQLITE_FILE, _sqlite_path(uri))
    else:
        _restore_postgresql(src / PG_FILE, uri, bool(existing), config.get("PG_BINDIR") or None)
    restored_media = _restore_media(config, src, manifest)
    counts = database_counts(uri)
    expected = manifest["counts"]
    diff = {t: (expected.get(t), counts.get(t)) for t in set(expected) | set(counts)
            if expected.get(t) != counts.get(t)}
    if diff:
        raise BackupError(f"restored row counts differ from the manifest: {diff}")
    return {"engine": engine, "tables": len(counts), "rows": sum(counts.values()), "media_files": restored_media,
            "alembic_revision": manifest.get("alembic_revision"), "backup_created_at": manifest["created_at"]}


def _restore_sqlite(backup: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".restore-", suffix=".sqlite3")
    os.close(fd)
    try:
        shutil.copyfile(backup, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        for suffix in ("-wal", "-shm"):  # a forced restore: the old file's WAL must not be replayed onto ours
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    conn = sqlite3.connect(target)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the restored database fails PRAGMA integrity_check: {check}")
    finally:
        conn.close()


def _restore_postgresql(dump: Path, uri: str, replace: bool, bindir: str | None) -> None:
    import psycopg

    conninfo, env = _libpq(uri)
    if replace:
        with psycopg.connect(conninfo, password=env.get("PGPASSWORD"), autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            conn.execute(f"DROP SCHEMA {_quote(schema)} CASCADE")
            conn.execute(f"CREATE SCHEMA {_quote(schema)}")
    pg_restore = find_pg_tool("pg_restore", bindir)
    # One transaction: a restore that fails half-way leaves the database empty, not half-filled.
    _run([pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
          "--no-password", f"--dbname={conninfo}", str(dump)], env)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD"), autocommit=True) as conn:
        conn.execute("ANALYZE")


def _restore_media(config, src: Path, manifest: dict) -> int:
    store = storage_from_config(config)
    restored = 0
    for name in manifest["files"]:
        if not name.startswith("media/"):
            continue
        key = name[len("media/"):]
        path = src / name
        try:
            if store.size(key) == path.stat().st_size:
                continue  # content-addressed: the same key with the same size is the same object
        except FileNotFoundError:
            pass
        store.put_file(key, path)
        restored += 1
    return restored
