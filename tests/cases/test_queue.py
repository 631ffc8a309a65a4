"""GET /api/v1/cases: the review queue's filters, sorts and keyset pages, on a small hand-built set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import (
    GRID_A2,
    GRID_B1,
    MICRO_A2_1,
    MICRO_B1_1,
    TOWN_A,
    TOWN_B,
    VILLAGE_A1,
)
from helpers import Phone, report_op, update_op
from sqlalchemy import event, inspect, select, text

from app.cases import deadlines, queue
from app.cases.models import Case
from app.extensions import db
from app.users.models import User

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def _tweak(app, cid, **values):
    with app.app_context():
        case = db.session.get(Case, cid)
        for key, value in values.items():
            setattr(case, key, value)
        db.session.commit()


@pytest.fixture
def cases(app, client, auth):
    """Nine cases in township A and one in B, with known times, states, flags and clocks."""
    worker = Phone(client, auth, "wanggeyuan")
    worker_a2 = Phone(client, auth, "worker_a2")
    volunteer = Phone(client, auth, "zhiyuanzhe")
    reviewer = Phone(client, auth, "reviewer")
    worker_b = Phone(client, auth, "worker_b")
    c = {}
    c["fire"] = worker.one(report_op(risk="red", description="楼道堆放杂物，堵塞消防通道"))["case_id"]
    c["ebike"] = worker_a2.one(report_op(micro_grid=MICRO_A2_1, location=None, category="ebike_charging",
                                         description="电动车在楼道内充电 EBike"))["case_id"]
    c["closed"] = worker.one(report_op(risk="blue", category="sanitation", description="垃圾清运不及时"))["case_id"]
    c["dup"] = worker.one(report_op(description="又一处杂物堆放"))["case_id"]  # same spot and kind as "fire"
    c["conflicted"] = worker.one(report_op(category="gas_safety", description="燃气管道老化"))["case_id"]
    c["overdue"] = worker.one(report_op(category="road_safety", description="路灯损坏 50% 不亮"))["case_id"]
    c["volunteer"] = volunteer.one(report_op(category="public_order", description="志愿者上报的隐患"))["case_id"]
    c["suspended"] = worker.one(report_op(category="flood_typhoon", description="河道堤防渗水"))["case_id"]
    c["same_time"] = worker.one(report_op(category="other", description="同一时刻上报"))["case_id"]
    c["town_b"] = worker_b.one(report_op(micro_grid=MICRO_B1_1, location=None, description="玉海街道的隐患"))["case_id"]
    reviewer.one(update_op(c["conflicted"], 1, {"risk_level": "red"}))
    worker.one(update_op(c["conflicted"], 1, {"risk_level": "blue"}))  # → an open conflict
    order = ["fire", "ebike", "closed", "dup", "conflicted", "overdue", "volunteer", "suspended", "same_time", "town_b"]
    for n, key in enumerate(order):
        at = T0 + timedelta(hours=n) if key != "same_time" else T0 + timedelta(hours=7)  # ties with "suspended"
        _tweak(app, c[key], reported_at=at, updated_at=at + timedelta(minutes=10 * ((n * 7) % 10)))
    _tweak(app, c["closed"], state="closed", level="village", stage=None, due_at=None, warn_at=None)
    _tweak(app, c["ebike"], state="accepted")
    far = datetime.now(UTC) + timedelta(days=30)
    for key in ("fire", "ebike", "dup", "conflicted", "volunteer", "same_time", "town_b"):
        _tweak(app, c[key], due_at=far + timedelta(hours=len(key)), warn_at=far)
    _tweak(app, c["overdue"], due_at=datetime.now(UTC) - timedelta(hours=1),
           warn_at=datetime.now(UTC) - timedelta(hours=2), level="township")
    with app.app_context():  # suspended: the clock stopped at 90 % of its limit
        case = db.session.get(Case, c["suspended"])
        stage = deadlines.current_stage(case)
        stage.running_since, stage.consumed_s = None, 0.9 * stage.limit_minutes * 60
        case.suspended_at, case.due_at, case.warn_at = datetime.now(UTC), None, None
        db.session.commit()
    return c


@pytest.fixture
def reviewer(auth):
    return auth.headers("reviewer")


def _get(client, headers, query="", expect=200):
    r = client.get(f"/api/v1/cases?{query}", headers=headers)
    assert r.status_code == expect, r.get_json()
    return r


def _ids(client, headers, query=""):
    return {item["id"] for item in _get(client, headers, query).get_json()}


def _names(cases, *names):
    return {cases[n] for n in names}


TOWN_A_CASES = ("fire", "ebike", "closed", "dup", "conflicted", "overdue", "volunteer", "suspended", "same_time")


def test_scope_comes_first(client, auth, cases, reviewer):
    assert _ids(client, reviewer) == _names(cases, *TOWN_A_CASES)
    assert _ids(client, auth.headers("reviewer_b")) == _names(cases, "town_b")
    assert _ids(client, auth.headers("zhiyuanzhe")) == _names(cases, "volunteer")
    assert _ids(client, auth.headers("worker_a2")) == _names(cases, "ebike")
    assert _ids(client, auth.headers("admin")) == set(cases.values())
    # a filter narrows the scope, never widens it
    assert _ids(client, auth.headers("reviewer_b"), "state=reported&state=accepted&state=closed") == \
        _names(cases, "town_b")


def test_item_fields(app, client, cases, reviewer):
    items = {i["id"]: i for i in _get(client, reviewer).get_json()}
    fire = items[cases["fire"]]
    assert fire["number"].startswith("RA-") or fire["number"]
    assert fire["state"] == "reported" and fire["risk_level"] == "red" and fire["category"] == "fire_hazard"
    assert fire["reporter"] == "wanggeyuan" and fire["assignee"] is None
    assert fire["township_code"] == TOWN_A and fire["village_code"] == VILLAGE_A1
    assert fire["stage"] == "accept" and fire["light"] == "green" and fire["version"] == 1
    assert set(fire) >= {"id", "number", "state", "level", "category", "risk_level", "description", "micro_grid_id",
                         "grid_code", "village_code", "township_code", "reporter", "assignee", "flags", "reported_at",
                         "updated_at", "due_at", "light", "version", "open_conflicts"}
    assert items[cases["conflicted"]]["open_conflicts"] == 1 and fire["open_conflicts"] == 0
    assert items[cases["overdue"]]["light"] == "red"
    assert items[cases["suspended"]]["light"] == "yellow" and items[cases["suspended"]]["due_at"] is None
    assert items[cases["closed"]]["light"] is None
    # the light is deadlines.light, computed without a query per row
    now = datetime.now(UTC)
    with app.app_context():
        for cid, item in items.items():
            assert item["light"] == deadlines.light(db.session.get(Case, cid), now), cid


def test_description_is_cut_to_140_characters(app, client, cases, reviewer):
    _tweak(app, cases["fire"], description="长" * 500)
    items = {i["id"]: i for i in _get(client, reviewer).get_json()}
    assert items[cases["fire"]]["description"] == "长" * 140


@pytest.mark.parametrize("query, expected", [
    ("state=reported", ("fire", "dup", "conflicted", "overdue", "volunteer", "suspended", "same_time")),
    ("state=accepted&state=closed", ("ebike", "closed")),
    ("state=accepted,closed", ("ebike", "closed")),
    ("risk_level=red", ("fire", "conflicted")),  # the reviewer's red stood against the phone's blue
    ("risk_level=blue&risk_level=red", ("fire", "closed", "conflicted")),
    ("category=ebike_charging&category=sanitation", ("ebike", "closed")),
    (f"region={GRID_A2}", ("ebike",)),
    (f"region={VILLAGE_A1}", TOWN_A_CASES),
    ("level=village", ("closed",)),
    ("level=township", ("overdue",)),
    ("overdue=true", ("overdue",)),
    ("overdue=false", tuple(n for n in TOWN_A_CASES if n != "overdue")),
    ("flag=possible_duplicate", ("dup",)),
    ("flag=no_such_flag", ()),
    ("has_conflicts=true", ("conflicted",)),
    ("has_conflicts=false", tuple(n for n in TOWN_A_CASES if n != "conflicted")),
    ("reporter=zhiyuanzhe", ("volunteer",)),
    ("reporter=worker_a2", ("ebike",)),
    ("reporter=nobody", ()),
    ("from=2026-11-02T03:00:00Z", ("closed", "dup", "conflicted", "overdue", "volunteer", "suspended", "same_time")),
    ("to=2026-11-02T03:00:00Z", ("fire", "ebike")),
    ("from=2026-11-02T10:00:00%2B08:00&to=2026-11-02T12:00:00%2B08:00", ("ebike", "closed")),  # to: exclusive
    ("from=2026-11-02&to=2026-11-02", TOWN_A_CASES),  # a whole day in CST
    ("to=2026-11-01", ()),
    ("q=杂物", ("fire", "dup")),
    ("q=ebike", ("ebike",)),  # case-insensitive
    ("q=50%25", ("overdue",)),  # LIKE wildcards are matched literally
    ("q=_", ()),
    ("state=reported&risk_level=yellow&category=fire_hazard", ("dup",)),
])
def test_filters(client, cases, reviewer, query, expected):
    assert _ids(client, reviewer, query) == _names(cases, *expected)


@pytest.mark.parametrize("walk_from", [0, 10_000])
def test_conflict_filter_both_ways(client, cases, reviewer, monkeypatch, walk_from):
    """With many open conflicts SQLite walks the page and probes each case, with few it starts from the
    conflicts: the same cases either way, in both directions and with other filters."""
    from app.cases import queue

    monkeypatch.setattr(queue, "CONFLICTS_WALK_FROM", walk_from)
    assert _ids(client, reviewer, "has_conflicts=true") == _names(cases, "conflicted")
    assert _ids(client, reviewer, "has_conflicts=true&state=closed") == set()
    assert _ids(client, reviewer, "has_conflicts=false") == _names(
        cases, *(n for n in TOWN_A_CASES if n != "conflicted"))


def test_flag_any_and_number_search(app, client, cases, reviewer):
    got = _ids(client, reviewer, "flag=any")
    assert cases["dup"] in got and cases["fire"] not in got
    with app.app_context():
        number = db.session.get(Case, cases["ebike"]).number
    assert _ids(client, reviewer, f"q={number.lower()}") == {cases["ebike"]}


def _matching(app, cases, q: str) -> set[str]:
    """Town A's cases whose number or description holds ``q``, whatever its case: the search, in Python."""
    with app.app_context():
        rows = [db.session.get(Case, cid) for cid in _names(cases, *TOWN_A_CASES)]
        return {c.id for c in rows if q.lower() in c.number.lower() or q.lower() in c.description.lower()}


def test_text_search_finds_numbers_whole_and_in_part(app, client, cases, reviewer):
    """q is a substring of the number or the description, whatever its case, on both engines (PostgreSQL
    answers it from trigram indexes, SQLite by reading the rows: the same cases either way)."""
    with app.app_context():
        numbers = {key: db.session.get(Case, cid).number for key, cid in cases.items()}
    fire = numbers["fire"]  # e.g. RA-2026-000001
    prefix, year, seq = fire.split("-")
    # another case's description quotes the fire's number: the two fields are one search
    _tweak(app, cases["closed"], description=f"与{fire}为同一处，已合并处理")
    assert _ids(client, reviewer, f"q={fire}") == _names(cases, "fire", "closed")  # exactly
    assert _ids(client, reviewer, f"q={fire.lower()}") == _names(cases, "fire", "closed")
    assert _ids(client, reviewer, f"q={fire}0") == set()  # longer than any number
    assert _ids(client, reviewer, f"q={numbers['town_b']}") == set()  # scope first: B's number, A's reviewer
    assert len(_ids(client, reviewer, f"q={prefix}-{year}-")) == len(TOWN_A_CASES)  # every number
    for q in (f"{prefix}-{year}-", prefix.lower(), fire[len(prefix) - 1:], f"-{seq}", seq[-3:], seq[-1],
              f"{year}-{seq[:3]}", "-"):
        assert _ids(client, reviewer, f"q={q}") == _matching(app, cases, q), q


@pytest.mark.parametrize("query, expected", [
    ("q=楼道堆放杂物，堵塞消防通道", ("fire",)),  # a whole description
    ("q=堆放", ("fire", "dup")),
    ("q=杂物堆放", ("dup",)),
    ("q=电", ("ebike",)),  # one character
    ("q=楼道", ("fire", "ebike")),
    ("q=充电 ebike", ("ebike",)),  # Chinese and Latin, the Latin in another case than written
    ("q=充电EBike", ()),  # the space counts
    ("q=消防通道堵塞", ()),  # the same words in another order
    ("q=河道堤防渗水", ("suspended",)),
    ("q=隐患", ("volunteer",)),  # town B's "玉海街道的隐患" is outside the scope
    ("q=，", ("fire",)),  # a full-width comma
])
def test_text_search_in_chinese_descriptions(client, cases, reviewer, query, expected):
    assert _ids(client, reviewer, query) == _names(cases, *expected)


@pytest.mark.parametrize("flags, queries", [
    # (the dup case's flags, {flag filter: does it find the dup case})
    (["clock_skew", "possible_duplicate"], {"possible_duplicate": True, "clock_skew": True, "any": True,
                                            "possible": False, "duplicate": False, "skew": False}),
    (["outside_micro_grid"], {"outside_micro_grid": True, "any": True, "possible_duplicate": False,
                              "micro_grid": False}),
    ([], {"any": False, "possible_duplicate": False}),
    (None, {"any": False, "possible_duplicate": False}),
])
def test_flag_filter_is_one_whole_name(app, client, cases, reviewer, flags, queries):
    _tweak(app, cases["dup"], flags=flags)
    with app.app_context():  # the column keeps the list as written
        assert db.session.get(Case, cases["dup"]).flags == flags
    for flag, found in queries.items():
        assert (cases["dup"] in _ids(client, reviewer, f"flag={flag}")) is found, flag
    # a flag filter narrows, the others' flags are theirs: no case without flags ever comes back
    with app.app_context():
        flagged = {cid for cid in _names(cases, *TOWN_A_CASES) if db.session.get(Case, cid).flags}
    assert _ids(client, reviewer, "flag=any") == flagged


PG_ONLY_INDEXES = {"ix_cases_description_trgm": "q", "ix_cases_number_trgm": "q", "ix_cases_flags": "flag"}


def _plan(stmt) -> str:
    """PostgreSQL's plan for ``stmt``, its parameters bound as the queue binds them."""
    conn = db.session.connection()

    def explain(conn, cursor, statement, parameters, context, executemany):
        return "EXPLAIN " + statement, parameters

    event.listen(conn, "before_cursor_execute", explain, retval=True)
    try:
        return "\n".join(row[0] for row in conn.execute(stmt))
    finally:
        event.remove(conn, "before_cursor_execute", explain)


def test_text_and_flag_filters_are_index_look_ups_on_postgresql(app, client, cases, auth, db_kind):
    """On PostgreSQL q and a flag are answered from GIN indexes (trigrams, JSONB), and the cases they find
    are the ones a read of every row finds; SQLite has none of these indexes and reads the rows."""
    admin = auth.headers("admin")
    with app.app_context():
        names = {ix["name"] for ix in inspect(db.engine).get_indexes("cases")}
        number = db.session.get(Case, cases["ebike"]).number
    if db_kind == "sqlite":
        assert not names & set(PG_ONLY_INDEXES)
        return
    assert set(PG_ONLY_INDEXES) <= names
    _tweak(app, cases["closed"], flags=["clock_skew", "possible_duplicate"])
    searches = [{"q": number}, {"q": number[3:].lower()}, {"q": "楼道"}, {"q": "杂物堆放"}, {"q": "电"},
                {"flag": "possible_duplicate"}, {"flag": "clock_skew"}]
    with app.app_context():
        user = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
        for filters in searches:
            query = "&".join(f"{k}={v}" for k, v in filters.items())
            everything = _ids(client, admin, query)  # a small table: PostgreSQL reads it whole
            stmt = select(Case.id).where(*queue.criteria(user, filters, datetime.now(UTC)))
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            db.session.execute(text("SET LOCAL enable_indexscan = off"))  # no walk of another index either
            plan = _plan(stmt)
            assert any(ix in plan for ix, kind in PG_ONLY_INDEXES.items() if kind in filters), (filters, plan)
            assert {row.id for row in db.session.execute(stmt)} == everything, filters
            db.session.rollback()


def test_region_outside_scope_is_404(client, cases, reviewer, auth):
    for region in (TOWN_B, GRID_B1, "no-such-region"):
        r = _get(client, reviewer, f"region={region}", expect=404)
        assert r.get_json()["code"] == "not_found"
    _get(client, auth.headers("worker_a2"), f"region={VILLAGE_A1}", expect=404)  # above a grid worker's grid
    _get(client, auth.headers("reviewer_b"), f"region={TOWN_A}", expect=404)


@pytest.mark.parametrize("query", ["state=lost", "risk_level=pink", "level=galaxy", "sort=colour", "limit=0",
                                   "limit=201", "overdue=maybe", "from=yesterday", "flag=%22x%22",
                                   "flag=a%25"])
def test_bad_filters_are_422(client, cases, reviewer, query):
    r = _get(client, reviewer, query, expect=422)
    assert r.get_json()["code"] == "validation_failed"


def _expected_order(app, ids, sort):
    with app.app_context():
        rows = [db.session.get(Case, cid) for cid in ids]
        if sort == "reported_at":
            rows.sort(key=lambda c: (c.reported_at, c.id))
        elif sort == "-reported_at":
            rows.sort(key=lambda c: (c.reported_at, c.id), reverse=True)
        elif sort == "-updated_at":
            rows.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        elif sort == "number":
            rows.sort(key=lambda c: (c.number, c.id))
        elif sort == "due_at":
            rows.sort(key=lambda c: (c.due_at is None, c.due_at or T0, c.id))
        return [c.id for c in rows]


@pytest.mark.parametrize("sort", ["reported_at", "-reported_at", "due_at", "-updated_at", "number"])
def test_sort_orders(app, client, cases, reviewer, sort):
    got = [i["id"] for i in _get(client, reviewer, f"sort={sort}").get_json()]
    assert got == _expected_order(app, _names(cases, *TOWN_A_CASES), sort)


def test_default_sort_is_newest_first(app, client, cases, reviewer):
    got = [i["id"] for i in _get(client, reviewer).get_json()]
    assert got == _expected_order(app, _names(cases, *TOWN_A_CASES), "-reported_at")


@pytest.mark.parametrize("sort", ["reported_at", "-reported_at", "due_at", "-updated_at", "number"])
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_cursor_walks_every_row_once(app, client, cases, auth, sort, limit):
    admin = auth.headers("admin")
    full = [i["id"] for i in _get(client, admin, f"sort={sort}&limit=200").get_json()]
    assert len(full) == len(cases)
    seen, cursor, pages = [], None, 0
    while True:
        query = f"sort={sort}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = _get(client, admin, query)
        page = [i["id"] for i in r.get_json()]
        assert 0 < len(page) <= limit
        seen.extend(page)
        pages += 1
        cursor = r.headers.get("X-Next-Cursor")
        if cursor is None:
            break
        assert r.headers["Link"].endswith('>; rel="next"') and f"cursor={cursor}" in r.headers["Link"]
        assert pages <= len(cases)
    assert seen == full and len(set(seen)) == len(seen)


def test_cursor_keeps_the_filters_and_survives_new_cases(app, client, cases, reviewer, auth):
    r = _get(client, reviewer, "state=reported&limit=3")
    first = [i["id"] for i in r.get_json()]
    # a newer case arrives between pages: it belongs before the cursor, so the walk neither repeats nor skips
    Phone(client, auth, "wanggeyuan").one(report_op(description="新来的"))
    link = r.headers["Link"].split(">")[0].lstrip("<")
    rest = []
    while link:
        r = client.get(link, headers=reviewer)
        rest.extend(i["id"] for i in r.get_json())
        link = r.headers["Link"].split(">")[0].lstrip("<") if "Link" in r.headers else None
    expected = _names(cases, "fire", "dup", "conflicted", "overdue", "volunteer", "suspended", "same_time")
    assert set(first) | set(rest) == expected and len(first) + len(rest) == len(expected)


@pytest.mark.parametrize("cursor", ["not-base64!", "eyJ4IjoxfQ", "W10", "e30", "bm90IGpzb24"])
def test_bad_cursor_is_422(client, cases, reviewer, cursor):
    r = _get(client, reviewer, f"cursor={cursor}", expect=422)
    assert r.get_json()["code"] == "invalid_cursor" and "cursor" in r.get_json()["errors"]


def test_cursor_of_another_sort_is_422(client, cases, reviewer):
    cursor = _get(client, reviewer, "sort=number&limit=1").headers["X-Next-Cursor"]
    assert _get(client, reviewer, f"sort=number&limit=1&cursor={cursor}").status_code == 200
    _get(client, reviewer, f"sort=reported_at&limit=1&cursor={cursor}", expect=422)
    forged = queue.encode_cursor("reported_at", "yesterday", cases["fire"])
    _get(client, reviewer, f"sort=reported_at&cursor={forged}", expect=422)
    naive = queue.encode_cursor("reported_at", "2026-11-02T01:00:00", cases["fire"])
    _get(client, reviewer, f"sort=reported_at&cursor={naive}", expect=422)


def test_queue_needs_a_token(client):
    assert client.get("/api/v1/cases").status_code == 401
