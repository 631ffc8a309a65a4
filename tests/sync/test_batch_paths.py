"""A batch's fast paths (reports as Core rows, merges without savepoints from cases, stages and events read
up front) answer and store exactly what the op-by-op path does, alone and mixed with the ops that need it."""

from __future__ import annotations

import hashlib
import io
import random

from helpers import Phone, fake_hash, new_id, note_op, report_op, transition_op, update_op
from PIL import Image
from sqlalchemy import func, select

from app.cases.models import Case, CaseEvent, CasePhoto, CaseStage, Conflict
from app.extensions import db
from app.sync.models import OpLog


def _jpeg(seed: int) -> bytes:
    """A small photo of its own (noise, so that no two look alike to the perceptual hash)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (64, 48), bytes(rng.randrange(256) for _ in range(64 * 48 * 3)))
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return buf.getvalue()


def _events(case_id):
    return [(e.version, e.action, e.changes) for e in db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.version))]


def test_a_batch_of_reports_is_stored_whole(app, client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    photo = _jpeg(1)  # sent before the batch: both reports naming it attach it
    shared = hashlib.sha256(photo).hexdigest()
    assert client.put(f"/api/v1/media/{shared}", data=photo, headers=worker.headers).status_code == 201
    ops = [report_op(photos=[fake_hash(f"p{i}"), shared] if i < 2 else [fake_hash(f"p{i}")]) for i in range(5)]
    ops.append(report_op(handled_on_spot=True, risk="red"))
    results = worker.sync(*ops, client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied"] * 6
    with app.app_context():
        cases = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_([r["case_id"] for r in results])))}
        assert len(cases) == 6
        numbers = sorted(c.number for c in cases.values())
        assert len(set(numbers)) == 6 and all(numbers)
        assert len({c.change_seq for c in cases.values()}) == 6 and all(c.change_seq > 0 for c in cases.values())
        for r in results:
            case = cases[r["case_id"]]
            assert case.version == 1 and r["case_version"] == 1
            assert _events(case.id)[0][:2] == (1, "create")
            stage = db.session.scalars(select(CaseStage).where(CaseStage.case_id == case.id)).one()
            assert stage.stage == ("close" if case.handled_on_spot else "accept")
            assert case.stage == stage.stage and case.due_at == stage.due_at and case.due_at is not None
            assert case.warn_at is not None and case.warn_at < case.due_at
            logged = db.session.get(OpLog, r["op_id"])
            assert logged.status == "applied" and logged.result["case_id"] == case.id
        # the later of two cases sharing a photo is the one flagged
        first, second = cases[results[0]["case_id"]], cases[results[1]["case_id"]]
        assert "photo_reused" not in first.flags and "photo_reused" in second.flags
        assert "photo_reused" in results[1]["flags"] and "photo_reused" not in results[0]["flags"]
        links = db.session.scalars(select(CasePhoto).where(CasePhoto.case_id == second.id)
                                   .order_by(CasePhoto.position)).all()
        assert [link.position for link in links] == [0, 1] and "photo_reused" in links[1].flags
        assert cases[results[5]["case_id"]].state == "resolved"
        # all of them missing their photos
        assert results[0]["missing_photos"] == [fake_hash("p0")]  # the shared one was sent before
    # replayed whole: the same answers, nothing new
    again = worker.sync(*ops, client_time="now")["results"]
    assert [r["status"] for r in again] == ["duplicate"] * 6
    assert [r["case_id"] for r in again] == [r["case_id"] for r in results]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Case)
                                 .where(Case.id.in_([r["case_id"] for r in results]))) == 6


def test_several_merges_on_one_case_in_one_batch(app, client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    case_id = worker.one(report_op(risk="yellow", description="初始"))["case_id"]
    reviewer.one(update_op(case_id, 1, {"description": "审核改"}))  # version 2
    ops = [update_op(case_id, 1, {"risk_level": "red"}),  # applies (version 3)
           update_op(case_id, 1, {"description": "手机改"}),  # conflict: the server changed it since 1
           update_op(case_id, 2, {"risk_level": "blue"}),  # conflict: red since 2 (this batch's own change)
           update_op(case_id, 4, {"description": "再改"})]  # at the version just made: applies
    results = worker.sync(*ops, client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied", "conflict", "conflict", "applied"]
    assert [r["case_version"] for r in results] == [3, 4, 5, 6]
    assert results[1]["conflicts"][0]["server"] == "审核改"
    assert results[2]["conflicts"][0] == {**results[2]["conflicts"][0], "base": "yellow", "server": "red",
                                          "client": "blue"}
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert (case.risk_level, case.description, case.version) == ("red", "再改", 6)
        assert [v for v, _, _ in _events(case_id)] == [1, 2, 3, 4, 5, 6]
        stage = db.session.scalars(select(CaseStage).where(CaseStage.case_id == case_id)).one()
        assert stage.limit_minutes == 2 * 60 and case.due_at == stage.due_at  # red's accept limit
        assert db.session.scalar(select(func.count()).select_from(Conflict).where(Conflict.case_id == case_id)) == 2


def test_a_refused_merge_in_a_batch_leaves_nothing_behind(app, client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    one = worker.one(report_op(risk="yellow"))["case_id"]
    two = worker.one(report_op(risk="yellow"))["case_id"]
    results = worker.sync(update_op(one, 1, {"risk_level": "red", "category": "no_such_category"}),
                          update_op(two, 1, {"risk_level": "blue"}), client_time="now")["results"]
    assert results[0]["status"] == "rejected" and results[0]["code"] == "unknown_category"
    assert results[1]["status"] == "applied"
    with app.app_context():
        case = db.session.get(Case, one)
        assert (case.risk_level, case.version) == ("yellow", 1)
        assert len(_events(one)) == 1
        assert db.session.get(OpLog, results[0]["op_id"]) is None  # refused: not logged, may be fixed
        assert db.session.get(Case, two).risk_level == "blue"


def test_reports_merges_notes_and_transitions_in_one_batch(app, client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    old = worker.one(report_op(risk="yellow"))["case_id"]
    other = worker.one(report_op(risk="yellow"))["case_id"]
    new = new_id()
    ops = [update_op(old, 1, {"risk_level": "red"}),  # fast, before any op needing a savepoint
           report_op(report_id=new),
           update_op(new, 1, {"description": "同批次内修改"}),  # on the report just sent
           note_op(other),  # needs a savepoint: the rest go op by op
           update_op(old, 2, {"description": "之后"}),
           report_op()]
    results = worker.sync(*ops, client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied"] * 6
    assert [r["case_version"] for r in results] == [2, 1, 2, 2, 3, 1]
    with app.app_context():
        assert db.session.get(Case, new).description == "同批次内修改"
        assert db.session.get(Case, new).number is not None
        assert db.session.get(Case, old).description == "之后"
        assert [v for v, _, _ in _events(old)] == [1, 2, 3]
    accepted = reviewer.one(transition_op(old, 3, "accept"))
    assert accepted["status"] == "applied"
    # a held op is released by its report in a later batch, beside fast merges
    held_case = new_id()
    held = worker.one(update_op(held_case, 1, {"risk_level": "red"}))
    assert held["status"] == "held"
    results = worker.sync(update_op(other, 2, {"risk_level": "blue"}), report_op(report_id=held_case),
                          update_op(other, 3, {"description": "最后"}), client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied"] * 3
    with app.app_context():
        assert db.session.get(Case, held_case).risk_level == "red"
        assert db.session.get(OpLog, held["op_id"]).result["was_held"] is True
        assert db.session.get(Case, other).description == "最后"


def test_neighbours_read_before_the_lock_are_brought_up_to_date_under_it(app, client, auth):
    from helpers import INSIDE_A1_1

    from app.cases import duplicates, unit_of_work
    from app.database import utcnow

    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    lat, lon = INSIDE_A1_1
    rejected = worker.one(report_op(lat=lat, lon=lon))["case_id"]
    kept = worker.one(report_op(lat=lat + 0.0001, lon=lon))["case_id"]
    with app.app_context():
        found = duplicates.read_neighbours([("fire_hazard", lat, lon)], utcnow())
        db.session.commit()
    assert {rejected, kept} <= {item[0] for items in found.by_cell.values() for item in items}
    # after the read: a new case nearby, one rejected, one of another category
    late = worker.one(report_op(lat=lat + 0.0002, lon=lon))["case_id"]
    other = worker.one(report_op(lat=lat, lon=lon, category="sanitation"))["case_id"]
    assert reviewer.one(transition_op(rejected, 1, "reject", reason="不属实"))["status"] == "applied"
    with app.app_context():
        duplicates.use_neighbours(found)
        ids = {item[0] for items in unit_of_work.current().cache["neighbours"][1].values() for item in items}
        assert late in ids and kept in ids
        assert rejected not in ids and other not in ids
        unit_of_work.discard()
        db.session.rollback()
    # and through the protocol: a report next to them is flagged with both open ones
    answer = worker.one(report_op(lat=lat + 0.00005, lon=lon))
    assert set(answer["duplicate_of"]) == {kept, late}


def test_a_report_that_cannot_be_planned_fails_alone(app, client, auth):
    from datetime import date, timedelta

    from app.cases.models import CalendarDay

    worker = Phone(client, auth, "wanggeyuan")
    case_id = worker.one(report_op())["case_id"]
    with app.app_context():  # a calendar with no working day for years: no deadline can be set
        start = date.today() - timedelta(days=2)
        db.session.add_all(CalendarDay(day=start + timedelta(days=i), workday=False, name="停工")
                           for i in range(3 * 366 + 10))
        db.session.commit()
    results = worker.sync(report_op(), note_op(case_id), client_time="now")["results"]
    assert results[0]["status"] == "retry" and results[0]["code"] == "server_error"
    assert results[1]["status"] == "applied" and results[1]["case_version"] == 2


def test_possible_duplicates_found_by_the_batch_read_are_those_of_a_full_search(app, client, auth):
    """Reports crowded into about 150 m, three categories, batches of 20, two cases rejected half-way: each
    report's duplicate_of is exactly what a search of every case gives (same category, open when the report
    came, within 50 m, reported before it), nearest first."""
    import random

    from helpers import INSIDE_A1_1

    from app.geo.distance import haversine_m

    rng = random.Random(20261125)
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    lat, lon = INSIDE_A1_1
    answers, rejected = [], set()
    for batch in range(4):
        if batch == 2:  # two open cases taken out of the running
            for r, _ in answers[:2]:
                assert reviewer.one(transition_op(r["case_id"], 1, "reject", reason="不属实"))["status"] == "applied"
                rejected.add(r["case_id"])
        ops = [report_op(lat=round(lat + rng.uniform(-0.0007, 0.0007), 7),
                         lon=round(lon + rng.uniform(-0.0007, 0.0007), 7),
                         category=rng.choice(["fire_hazard", "sanitation", "road_safety"])) for _ in range(20)]
        answers += [(r, set(rejected)) for r in worker.sync(*ops, client_time="now")["results"]]
    with app.app_context():
        cases = {c.id: c for c in db.session.scalars(select(Case))}
    flagged = 0
    for r, gone in answers:
        assert r["status"] == "applied"
        case = cases[r["case_id"]]
        want = sorted((haversine_m(case.lat, case.lon, c.lat, c.lon), c.id) for c in cases.values()
                      if c.category == case.category and c.number < case.number and c.id not in gone
                      and haversine_m(case.lat, case.lon, c.lat, c.lon) <= 50)
        assert r.get("duplicate_of", []) == [cid for _, cid in want], r
        flagged += bool(want)
    assert flagged >= 20  # the crowd really has neighbours to find


def test_cases_read_under_the_lock_are_fresh_even_if_already_in_the_session(app, client, auth):
    """The read part's commit keeps what it loaded; a case already in the session must still be read anew
    when the batch takes its lock, or a merge would start from a stale version."""
    from sqlalchemy import text

    from app.sync.services import _lock_cases

    worker = Phone(client, auth, "wanggeyuan")
    case_id = worker.one(report_op())["case_id"]
    with app.app_context():
        session = db.session()
        stale = session.get(Case, case_id)
        assert stale.version == 1
        expire, session.expire_on_commit = session.expire_on_commit, False
        try:
            session.commit()  # as the sync's read part ends: nothing expired
        finally:
            session.expire_on_commit = expire
        with db.engine.begin() as other:  # another worker's batch lands meanwhile
            other.execute(text("UPDATE cases SET version = 7, description = '别处改过' WHERE id = :id"),
                          {"id": case_id})
        locked = _lock_cases([{"case_id": case_id}])
        assert locked[case_id] is stale  # the same object, refreshed
        assert stale.version == 7 and stale.description == "别处改过"
        db.session.rollback()


def test_ops_on_cases_the_batch_has_locked_do_not_read_them_again(app, client, auth):
    """Notes and transitions (op by op, in savepoints) use the cases the batch read and locked up front: one
    read of ``cases`` for the batch, however many ops; a note after a failed op still sees the case as the
    database has it."""
    import re

    from sqlalchemy import event

    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    ids = [worker.one(report_op())["case_id"] for _ in range(3)]
    with app.app_context():
        engine = db.engine
    reads = []

    def watch(conn, cursor, statement, *args):
        if re.match(r"\s*SELECT\b.*\bFROM cases\b", statement, re.S):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        ops = [note_op(i, text=f"现场{n}") for n, i in enumerate(ids)] + [
            transition_op(ids[0], 99, "accept"),  # a stale base version: refused in its savepoint
            note_op(ids[0], text="之后")]
        results = reviewer.sync(*ops)["results"]
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert [r["status"] for r in results[:3]] == ["applied"] * 3 and results[4]["status"] == "applied"
    assert results[3]["status"] in ("rejected", "conflict"), results[3]
    assert len(reads) == 1, reads  # the batch's locked read; before, one more per op
    with app.app_context():
        assert [a for _, a, _ in _events(ids[0])] == ["create", "note", "note"]
        assert db.session.get(Case, ids[0]).version == 3


def _notes_state(case_id):
    from app.cases.models import CaseNote

    notes = [(n.text, n.event_version) for n in db.session.scalars(
        select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.event_version))]
    links = [(p.sha256, p.role, p.event_version, p.note_id is not None, p.flags) for p in db.session.scalars(
        select(CasePhoto).where(CasePhoto.case_id == case_id).order_by(CasePhoto.event_version, CasePhoto.position))]
    events = [(e.version, e.action, (e.data.get("text"), len(e.data.get("photos", [])), bool(e.data.get("note_id")))
               if e.action == "note" else None) for e in db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.version))]
    return db.session.get(Case, case_id).version, notes, links, events


def test_notes_as_rows_store_what_notes_in_savepoints_store(app, client, auth):
    """Notes on cases only notes touch go in as the batch's rows; the same notes sent behind an op that
    needs a savepoint go op by op. Both store the same events, notes, photo links and flags, and answer
    alike: a note id sent twice is applied once, a note id stored before is a no-op, a photo already on
    another case is flagged, and a volunteer's note on someone else's case is refused."""
    from app.cases.models import CaseNote

    worker = Phone(client, auth, "wanggeyuan")
    volunteer = Phone(client, auth, "zhiyuanzhe")
    answers, states = [], []
    for path in ("rows", "savepoints"):
        # x's photo is sent (the worker holds it), so naming it again on y is a reuse
        sent = _jpeg(2 if path == "rows" else 3)
        x, y, z = (worker.one(report_op(photos=[hashlib.sha256(sent).hexdigest() if i == 0
                                                 else fake_hash(f"{path}-r{i}")]))["case_id"] for i in range(3))
        assert client.put(f"/api/v1/media/{hashlib.sha256(sent).hexdigest()}", data=sent,
                          headers=worker.headers).status_code == 201
        stored_before = new_id()
        assert worker.one(note_op(y, text="早先", note_id=stored_before))["status"] == "applied"
        twice = new_id()
        ops = [note_op(x, text="第一次", note_id=twice,
                       photos=[{"sha256": fake_hash(f"{path}-n1"), "role": "rectification"}]),
               note_op(x, text="又发一次", note_id=twice),
               note_op(y, text="已有", note_id=stored_before),
               note_op(y, text="现场已清理", photos=[{"sha256": hashlib.sha256(sent).hexdigest()}]),  # x's: reused
               note_op(x, text="第二条")]
        if path == "savepoints":
            # first an op that must run in a savepoint (its case gets a note and an update): the rest follow it
            ops.insert(0, note_op(z, text="先"))
            ops.insert(1, update_op(z, 1, {"risk_level": "red"}))
        from sqlalchemy import event

        with app.app_context():
            engine = db.engine
        savepoints = []
        def watch(conn, cursor, statement, *args, savepoints=savepoints):
            if statement.startswith("SAVEPOINT"):
                savepoints.append(1)

        event.listen(engine, "before_cursor_execute", watch)
        try:
            results = worker.sync(*ops, client_time="now")["results"]
        finally:
            event.remove(engine, "before_cursor_execute", watch)
        assert (len(savepoints) == 0) is (path == "rows"), (path, len(savepoints))
        if path == "savepoints":
            assert len(savepoints) == len(ops)  # every op, the update on z too (its case also has a note)
            assert [r["status"] for r in results[:2]] == ["applied", "applied"]
            results = results[2:]
        answers.append([(r["status"], r["case_version"] - (1 if r["case_id"] == y else 0) if r.get("case_version") else None)
                        for r in results])
        refused = volunteer.sync(note_op(x, text="不是我报的"))["results"][0]
        assert refused["status"] == "held" and refused["code"] == "unknown_case"  # not theirs to see
        with app.app_context():
            states.append([_notes_state(x), _notes_state(y)])
            assert db.session.get(CaseNote, twice).text == "第一次"
            assert db.session.get(CaseNote, stored_before).text == "早先"
            assert db.session.scalar(select(func.count()).select_from(OpLog)
                                     .where(OpLog.op_id.in_([op["op_id"] for op in ops]))) == len(ops)
    assert [s for s, _ in answers[0]] == ["applied"] * 5
    assert answers[0] == answers[1]
    # photo hashes differ by path; compare everything else
    def strip(state):
        return [(v, notes, [(role, ev, has_note, flags) for _, role, ev, has_note, flags in links], events)
                for v, notes, links, events in state]
    assert strip(states[0]) == strip(states[1])
    x_state, y_state = states[0]
    assert x_state[0] == 3 and [t for t, _ in x_state[1]] == ["第一次", "第二条"]
    assert any("photo_reused" in flags for *_, flags in y_state[2])
