"""The unit of work: what the current transaction changed, and the look-ups it may reuse.

Domain functions (reports, merge, notes, transitions) write through it and nothing else: ``add`` a row,
record an ``event`` on a case, ``touch`` a case. Whether those rows are ORM objects flushed one by one or
plain rows written together is decided here (``bulk``), never by the domain functions.

The caller (a sync batch, an online route) owns the transaction and calls ``finish()`` just before
committing: it numbers new cases, stamps the change order the phones pull by and writes the queued rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.cases.clock import CHINA
from app.cases.models import Case, CaseEvent, CaseNote, CaseScopeExit, CaseStage, Counter
from app.database import insert_many
from app.extensions import db

_KEY = "gridcase_unit_of_work"


class UnitOfWork:
    """Kept on the session until ``finish``. Holding the cases strongly also keeps them in the identity map
    (it only holds unmodified objects weakly), so finishing does not read them back."""

    def __init__(self):
        self.touched: dict[str, Case] = {}
        self.new_cases: dict[str, Case] = {}
        self.new_by_cell: dict[tuple, list] = {}  # (category, cell_lat, cell_lon) -> new cases, for duplicates
        self.scope_exits: list[CaseScopeExit] = []
        self.cache: dict = {}  # reference data (categories, regions, calendar, SLA rules), read once
        # Filled by a sync batch up front (None: ask the database).
        self.existing_ids: set[str] | None = None  # report ids stored already
        self.notes: dict[str, bool] = {}  # note id -> stored already (a sync batch reads its ids in one query)
        # Kept because a sync batch writes its rows with one INSERT (COPY on PostgreSQL) per table at the end:
        # several times fewer round trips and no ORM bookkeeping (bench/RESULTS.md, "report.create").
        self.queueing = False
        self.rows: dict[str, list[SimpleNamespace]] = {}

    # ------------------------------------------------------------------------------------------ writing

    @contextmanager
    def bulk(self) -> Iterator[UnitOfWork]:
        """Rows added inside are queued and written together (by ``flush`` or ``finish``); the session does
        not autoflush meanwhile. For ops that check everything that can refuse them before their first write."""
        before, self.queueing = self.queueing, True
        try:
            with db.session.no_autoflush:
                yield self
        finally:
            self.queueing = before

    def add(self, model, **values):
        """A new row: an ORM object added to the session, or (in ``bulk``) a plain row queued for one
        INSERT. Both read and write the same attributes, so the code that follows need not know which."""
        if not self.queueing:
            obj = model(**values)
            db.session.add(obj)
            return obj
        row = SimpleNamespace(**values)
        self.rows.setdefault(model.__tablename__, []).append(row)
        return row

    def touch(self, case: Case) -> None:
        """Mark a case changed in this transaction (numbered and stamped by ``finish``)."""
        self.touched[case.id] = case

    def event(self, case: Case, actor, action: str, changes: dict | None = None, data: dict | None = None) -> int:
        """Append an event to a case's log; returns the case's new version."""
        case.version = (case.version or 0) + 1
        case.updated_at = actor.now
        self.add(CaseEvent, case_id=case.id, version=case.version, action=action,
                 actor_id=actor.user.id if actor.user is not None else None, device_id=actor.device_id,
                 op_id=actor.op_id, at=actor.now, client_time=actor.client_time, changes=changes or {},
                 data=data or {})
        self.touch(case)
        known = self.cache.get("events", {}).get(case.id)
        if known is not None:
            known[1].append((case.version, changes or {}))
        return case.version

    def new_case(self, case: Case) -> None:
        self.new_cases[case.id] = case
        if case.lat is not None:
            self.new_by_cell.setdefault((case.category, case.cell_lat, case.cell_lon), []).append(
                (case.id, case.lat, case.lon, case.reported_at))

    def scope_exit(self, case: Case, at, old_codes: dict) -> None:
        """The case left the regions it was in. Always an ORM object, even in ``bulk``: ``finish`` stamps
        it with the case's change order after ``flush`` may have written the queued rows."""
        scope_exit = CaseScopeExit(case_id=case.id, at=at, change_seq=0, **old_codes)
        db.session.add(scope_exit)
        self.scope_exits.append(scope_exit)

    # ------------------------------------------------------------------------------------------ reading

    def case_exists(self, case_id: str) -> bool:
        if case_id in self.new_cases:
            return True
        if self.existing_ids is not None:
            return case_id in self.existing_ids
        return db.session.get(Case, case_id) is not None

    def note_exists(self, note_id: str) -> bool:
        """Whether a note id is stored already (or added in this transaction)."""
        if note_id not in self.notes:
            self.notes[note_id] = db.session.get(CaseNote, note_id) is not None
        return self.notes[note_id]

    def add_note(self, **values) -> None:
        self.add(CaseNote, **values)
        self.notes[values["id"]] = True

    def changes_after(self, case: Case, version: int) -> Iterable[dict]:
        """The ``changes`` of the case's events after ``version``, in order."""
        known = self.cache.get("events", {}).get(case.id)
        if known is not None and known[0] <= version:
            return (diff for v, diff in known[1] if v > version)
        return db.session.scalars(select(CaseEvent.changes).where(CaseEvent.case_id == case.id,
                                                                  CaseEvent.version > version)
                                  .order_by(CaseEvent.version))

    def running_stage(self, case: Case) -> CaseStage | None:
        """The case's running stage: the latest started of those not ended."""
        known = self.cache.get("open_stages")
        if known is not None and case.id in known:
            return known[case.id]
        return db.session.scalars(select(CaseStage).where(CaseStage.case_id == case.id, CaseStage.ended_at.is_(None))
                                  .order_by(CaseStage.started_at.desc())).first()

    def prefetch(self, found: dict[str, Case], bases: dict[str, int]) -> None:
        """Read up front, for cases a sync batch only edits (``case.update``), their running stages and the
        events after the oldest base version each edit names: one query each instead of two per op (kept for
        the merge benchmark, bench/RESULTS.md). ``event`` keeps the events up to date. Only while the batch
        runs without savepoints (nothing rolled back under them): the first op that needs one calls
        ``forget_prefetched``."""
        if not found:
            return
        stages = self.cache.setdefault("open_stages", {})
        stages.update((cid, None) for cid in found)
        for stage in db.session.scalars(select(CaseStage).where(CaseStage.case_id.in_(list(found)),
                                                                CaseStage.ended_at.is_(None))
                                        .order_by(CaseStage.started_at)):
            stages[stage.case_id] = stage  # the latest started, as running_stage picks
        events = self.cache.setdefault("events", {})
        older = {cid: base for cid, base in bases.items() if cid in found and base < found[cid].version}
        for cid, case in found.items():
            events[cid] = (min(older.get(cid, case.version), case.version), [])
        if older:
            t = CaseEvent.__table__.c
            for cid, version, diff in db.session.execute(
                    select(t.case_id, t.version, t.changes)
                    .where(or_(*(and_(t.case_id == cid, t.version > base) for cid, base in older.items())))
                    .order_by(t.case_id, t.version)):
                events[cid][1].append((version, diff))

    def forget_prefetched(self) -> None:
        """Drop what ``prefetch`` read: from here on the database is asked again."""
        self.cache.pop("events", None)
        self.cache.pop("open_stages", None)

    # ------------------------------------------------------------------------------------------ savepoints

    def mark(self) -> tuple:
        """A point to come back to when the savepoint of one op is rolled back."""
        return (set(self.touched), set(self.new_cases), len(self.scope_exits),
                {name: len(rows) for name, rows in self.rows.items()}, dict(self.notes))

    def restore(self, mark: tuple) -> None:
        touched, new_cases, exits, rows, notes = mark
        self.rows = {name: queued[:rows.get(name, 0)] for name, queued in self.rows.items()}
        self.touched = {k: v for k, v in self.touched.items() if k in touched}
        self.new_cases = {k: v for k, v in self.new_cases.items() if k in new_cases}
        self.new_by_cell = {key: [row for row in rows if row[0] in new_cases]
                            for key, rows in self.new_by_cell.items()}
        self.notes = notes
        # what was read about photos may hold links rolled back: read again (what went before is flushed)
        for key in [key for key in self.cache if isinstance(key, tuple) and key[0] == "evidence"]:
            del self.cache[key]
        del self.scope_exits[exits:]

    # ------------------------------------------------------------------------------------------ the end

    def flush(self) -> None:
        """Write the rows queued so far (numbered and stamped as ``finish`` would), because what follows
        reads the database or points at them. Stamping early holds the counters' row locks a little
        longer; the stamps still follow commit order."""
        if not self.rows:
            return
        with db.session.no_autoflush:
            queued = {row.id for row in self.rows.get(Case.__tablename__, ())}
            cases = [self.touched[cid] for cid in sorted(queued)
                     if isinstance(self.touched.get(cid), SimpleNamespace)]
            _settle(cases)
            _insert_rows(self.rows)
        self.rows = {}
        for case in cases:
            del self.touched[case.id]
        for case_id in queued:
            self.new_cases.pop(case_id, None)
        if self.existing_ids is not None:  # the cases are in the database now: a look-up finds them there
            self.existing_ids |= queued

    def finish(self) -> None:
        """Number new cases and stamp the change order, as the last writes before commit: the counter's row
        lock is then held only to the commit, so stamps follow commit order and no pull misses one."""
        with db.session.no_autoflush:
            cases = [self.touched[cid] for cid in sorted(self.touched)]
            seq_of, last = _settle(cases)
            for scope_exit in self.scope_exits:
                scope_exit.change_seq = seq_of.get(scope_exit.case_id, last)
            _insert_rows(self.rows)


def current() -> UnitOfWork:
    """This transaction's unit of work (made on first use)."""
    info = db.session.info
    uow = info.get(_KEY)
    if uow is None:  # (not setdefault: that would build one on every call)
        uow = info[_KEY] = UnitOfWork()
    return uow


def finish() -> None:
    """Finish this transaction's unit of work (see ``UnitOfWork.finish``); call just before committing."""
    uow = db.session.info.pop(_KEY, None)
    if uow is not None:
        uow.finish()


def flush() -> None:
    uow = db.session.info.get(_KEY)
    if uow is not None:
        uow.flush()


def discard() -> None:
    """Forget what a rolled-back transaction had changed."""
    db.session.info.pop(_KEY, None)


# ---------------------------------------------------------------------------------------------- helpers


def _insert_rows(queued: dict[str, list[SimpleNamespace]]) -> None:
    """One INSERT per table (and per set of columns), parents first. Plain INSERT statements, so the
    database's triggers fire for every row."""
    for name in sorted(queued, key=lambda name: name != Case.__tablename__):  # the rest point at cases
        rows, table = queued[name], db.metadata.tables[name]
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            values = vars(row)
            groups.setdefault(tuple(values), []).append(values)
        for group in groups.values():
            insert_many(db.session.connection(), table, group)


def _bump(name: str, n: int = 1) -> int:
    """Add ``n`` to a named counter under its row lock; returns the new value."""
    dialect = db.session.get_bind().dialect.name
    table = Counter.__table__
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    # one statement: the row made or updated under its lock, its new value returned
    return db.session.execute(
        upsert.values(name=name, value=n).on_conflict_do_update(
            index_elements=[table.c.name], set_={"value": table.c.value + n})
        .returning(table.c.value)).scalar_one()


def _settle(cases: list) -> tuple[dict, int | None]:
    """Number new cases (per year, in report order) and stamp the change order."""
    if not cases:
        return {}, None
    prefix = current_app.config["CASE_NUMBER_PREFIX"]
    by_year: dict[int, list] = {}
    for case in cases:
        if case.number is None:
            by_year.setdefault(case.reported_at.astimezone(CHINA).year, []).append(case)
    for year, group in sorted(by_year.items()):
        last = _bump(f"case_number:{prefix}:{year}", len(group))
        for offset, case in enumerate(sorted(group, key=lambda c: (c.reported_at, c.id))):
            case.number = f"{prefix}-{year}-{last - len(group) + offset + 1:06d}"
    last = _bump("change_seq", len(cases))
    seq_of = {}
    for offset, case in enumerate(cases):
        case.change_seq = seq_of[case.id] = last - len(cases) + offset + 1
    return seq_of, last
