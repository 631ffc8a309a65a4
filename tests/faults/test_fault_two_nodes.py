"""Two nodes, one database, one object store, one Redis: the README's "any number of nodes", tested.

Two gunicorn masters on two ports serve one PostgreSQL, one S3-compatible server (moto's) and one real
redis-server. Phones post sync batches (client op ids) and upload their photos, alternating between the
nodes; one node is killed with -9 in mid-stream, and the phones send whatever was not acknowledged to the
other one. Afterwards every acknowledged op is in the database exactly once, every case once, every photo
comes back with its own sha256, and a limit reached through one node holds on the other.

PostgreSQL only (SQLite is one file on one machine, not a database two nodes share): it runs in the
``--db=postgresql`` pass, where a PostgreSQL that cannot start fails the run under CI=true.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import pytest
import requests
from factories import TEST_USERS
from faultkit import check_database, check_ops, photo_set, sha256
from helpers import report_op
from server import ServerProcess
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

BUCKET = "gridcase-two-nodes"
PHONES = 3
BATCHES = 8  # per phone, each one report with a photo and two without
BUDGET_S = 90.0
LOGIN_LIMIT = 6
THINK_S = 0.15  # a phone's pause between two batches: the stream outlasts the kill however fast the nodes are


@pytest.fixture
def s3_endpoint():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing"
                                   ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


class Phone(threading.Thread):
    """One phone: its outbox of batches and photos, sent to node A or B in turn; whatever got no answer is
    sent again, to the other node."""

    def __init__(self, n: int, nodes: list[str], photos: list[bytes]):
        super().__init__(daemon=True, name=f"phone-{n}")
        self.nodes, self.node = nodes, n % 2
        self.device_id = f"two-nodes-{n}-{uuid.uuid4().hex[:6]}"
        self.http = requests.Session()
        self.token: str | None = None
        self.photos = photos
        self.batches = []
        for i, photo in enumerate(photos):
            self.batches.append([report_op(photos=[sha256(photo)], description=f"两节点{n}-{i}：楼道杂物"),
                                 report_op(description=f"两节点{n}-{i}：消防通道"),
                                 report_op(description=f"两节点{n}-{i}：电动车充电")])
        self.acked: dict[str, str] = {}  # op_id -> status of its first acknowledgement
        self.case_ids: set[str] = set()
        self.uploaded: set[str] = set()
        self.sent_to: list[int] = []
        self.failovers = 0
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.nodes[self.node]

    def _call(self, method: str, path: str, **kwargs) -> requests.Response | None:
        """One request to the current node; None (and the other node next) when it did not answer."""
        try:
            if self.token is None:
                r = self.http.post(self.url + "/api/v1/auth/login", timeout=5, json={
                    "username": "wanggeyuan", "password": TEST_USERS["wanggeyuan"][2], "device_id": self.device_id})
                if r.status_code >= 500:
                    raise requests.ConnectionError(f"login: HTTP {r.status_code}")
                assert r.status_code == 200, r.text[:300]
                self.token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            r = self.http.request(method, self.url + path, timeout=5, headers=headers, **kwargs)
            if r.status_code >= 500:
                raise requests.ConnectionError(f"HTTP {r.status_code}")
            self.sent_to.append(self.node)
            return r
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, ValueError):
            self.failovers += 1
            self.node ^= 1  # the other node
            self.http.close()
            time.sleep(0.05)
            return None

    def run(self) -> None:
        try:
            for i, batch in enumerate(self.batches):
                outbox = list(batch)
                while outbox:
                    r = self._call("POST", "/api/v1/sync", json={"device_id": self.device_id, "ops": outbox})
                    if r is None:
                        continue
                    assert r.status_code == 200, r.text[:300]
                    again = []
                    for op, result in zip(outbox, r.json()["results"], strict=True):
                        assert result["status"] in ("applied", "duplicate", "retry"), result
                        if result["status"] == "retry":
                            again.append(op)
                            continue
                        self.acked.setdefault(op["op_id"], result["status"])
                        self.case_ids.add(result["case_id"])
                    outbox = again
                photo = self.photos[i]
                while sha256(photo) not in self.uploaded:
                    r = self._call("PUT", f"/api/v1/media/{sha256(photo)}", data=photo,
                                   headers={"Content-Type": "image/jpeg"})
                    if r is not None:
                        assert r.status_code in (200, 201), r.text[:300]
                        self.uploaded.add(sha256(photo))
                self.node ^= 1  # the next batch goes to the other node
                time.sleep(THINK_S)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _wrong_password(url: str) -> int:
    return requests.post(url + "/api/v1/auth/login", timeout=10, json={
        "username": "reviewer", "password": "not-the-password", "device_id": "two-nodes-guesser"}).status_code


def test_two_nodes_one_killed_lose_nothing_and_share_their_limits(database_url, db_kind, tmp_path, s3_endpoint,
                                                                  redis_url):
    assert db_kind == "postgresql"
    started = time.monotonic()
    env = {"GRIDCASE_MEDIA_STORAGE": "s3", "GRIDCASE_S3_BUCKET": BUCKET, "GRIDCASE_S3_ENDPOINT_URL": s3_endpoint,
           "GRIDCASE_S3_REGION": "us-east-1", "GRIDCASE_S3_ACCESS_KEY_ID": "testing",
           "GRIDCASE_S3_SECRET_ACCESS_KEY": "testing", "GRIDCASE_RATELIMIT_STORAGE_URI": redis_url,
           "GRIDCASE_LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per minute"}
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nodes.append(ServerProcess(database_url, tmp_path / name, workers=2, worker_class="gthread", threads=4,
                                   extra_env=env).start())
    a, b = nodes
    assert a.port != b.port
    phones = [Phone(n, [a.url, b.url], photo_set(BATCHES, f"two-nodes-{n}")) for n in range(PHONES)]
    try:
        # A limit reached through one node holds on the other: wrong passwords alternate between them.
        statuses = [_wrong_password(nodes[i % 2].url) for i in range(LOGIN_LIMIT + 2)]
        assert statuses == [401] * LOGIN_LIMIT + [429, 429], statuses

        for phone in phones:
            phone.start()
        # Node A dies (master and workers, kill -9) once about a third of the stream is acknowledged.
        total = PHONES * BATCHES * 3
        while sum(len(p.acked) for p in phones) < total // 3 and any(p.is_alive() for p in phones):
            time.sleep(0.01)
        killed_at = sum(len(p.acked) for p in phones)
        a.kill()
        for phone in phones:
            phone.join(timeout=max(1.0, BUDGET_S - (time.monotonic() - started)))
        assert not any(p.is_alive() for p in phones), "the phones did not finish in time"
        for phone in phones:
            assert phone.error is None, repr(phone.error)
        assert 0 < killed_at < total, killed_at

        # Every photo comes back from the surviving node byte for byte (and its thumbnail decodes).
        reviewer = requests.post(b.url + "/api/v1/auth/login", timeout=10, json={
            "username": "admin", "password": TEST_USERS["admin"][2], "device_id": "two-nodes-check"}).json()
        auth = {"Authorization": f"Bearer {reviewer['access_token']}"}
        for phone in phones:
            for photo in phone.photos:
                digest = sha256(photo)
                r = requests.get(f"{b.url}/api/v1/media/{digest}", params={"variant": "original"}, headers=auth,
                                 timeout=10)
                assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest, \
                    (r.status_code, len(r.content), len(photo))
                thumb = requests.get(f"{b.url}/api/v1/media/{digest}", params={"variant": "thumb"}, headers=auth,
                                     timeout=10)
                assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        # The limit still holds on the survivor (counted in Redis, not in the dead node's memory).
        assert _wrong_password(b.url) == 429
    finally:
        log = a.log_text() + b.log_text()
        for node in nodes:
            node.stop()

    acked = {op_id: status for p in phones for op_id, status in p.acked.items()}
    assert len(acked) == total
    assert sum(p.failovers for p in phones) > 0, "no phone had to fail over: the kill struck nothing"
    assert all({0, 1} <= set(p.sent_to) for p in phones), "every phone talked to both nodes"
    check_ops(database_url, acked)
    check_database(database_url, db_kind)
    case_ids = {c for p in phones for c in p.case_ids}
    assert len(case_ids) == total
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            cases = conn.execute(text("SELECT id, count(*) FROM cases GROUP BY id")).all()
            logged = conn.execute(text("SELECT op_id, count(*) FROM op_log GROUP BY op_id")).all()
            photos = dict(conn.execute(text("SELECT sha256, size FROM photos")).all())
            missing = conn.execute(text("SELECT count(*) FROM case_photos WHERE NOT attached")).scalar()
    finally:
        engine.dispose()
    by_case = {str(cid): n for cid, n in cases}
    assert all(by_case.get(c) == 1 for c in case_ids), "a case is missing or twice"
    logged = {str(op_id): n for op_id, n in logged}
    assert all(logged.get(op_id) == 1 for op_id in acked), "an acknowledged op is missing or twice"
    for phone in phones:
        for photo in phone.photos:
            assert photos.get(sha256(photo)) == len(photo)
    assert missing == 0, "a photo uploaded by its reporter stayed missing on its case"
    bad = [line for line in log.splitlines() if "Traceback" in line and "SIGKILL" not in line]
    assert not bad, "\n".join(bad[:10])
    print(f"\ntwo nodes: {total} ops, {len(photos)} photos, killed A after {killed_at} acks, "
          f"{sum(p.failovers for p in phones)} fail-overs, {time.monotonic() - started:.1f}s")
