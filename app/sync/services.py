"""The sync protocol (v1): a batch of ops applied exactly once, answered per op.

A batch runs in three steps:

1. Before the write lock (a read-only transaction; on SQLite beside another worker's writes): each op is
   validated, ops already in the op log are answered from it, and each report's checks, place, flags and
   first stage are worked out (``plan_report``), with the open cases around the reports read once.
2. Under the write lock, one database transaction: nothing is acknowledged before its commit, so a crash
   at any instant leaves every op either applied and logged or not at all, and the op log rows go in with
   the ops' effects. Reports, and edits of cases only edited in this batch, check everything that can
   refuse them before their first write and so need no savepoint: their rows (case, event, stage, photo
   links, op log) are written with one plain INSERT per table at the end. Any other op runs in a
   savepoint of its own: a bad op is rolled back alone and never blocks the ops behind it. Should an op
   fail half-way outside a savepoint, the batch runs again with a savepoint per op.
3. After the commit: which photos the batch's cases still lack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import datetime

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from app.auth.scope import case_visible
from app.cases import actions, duplicates, merge, notes, reports, transitions, unit_of_work
from app.cases.models import Case
from app.database import read_only_transactions, reset_begin_mode, set_begin_mode, transient_error, utcnow
from app.devices.models import Device
from app.errors import NUL_MESSAGE, DomainError, PayloadTooLarge, ValidationFailed, _flatten, nul_paths
from app.extensions import db
from app.sync.models import HeldOp, OpLog
from app.sync.schemas import OP_SCHEMAS, EnvelopeIn, fast_load
from app.users.models import User

log = logging.getLogger(__name__)

BATCH_ATTEMPTS = 4
_UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
RETRY_AFTER_S = 5


class InvalidEnvelope(DomainError):
    status = 400
    code = "invalid_json"


# ---------------------------------------------------------------------------------------------- parsing


def _nan(constant: str) -> float:
    # NaN and Infinity are not JSON; read them so that only the op holding one is refused, by its schema.
    return float("nan")


def parse_envelope(raw: bytes, token_device: str | None) -> dict:
    """Read and check the envelope (not the ops: each op is judged alone). Raises InvalidEnvelope,
    PayloadTooLarge, ValidationFailed."""
    cfg = current_app.config
    if len(raw) > int(cfg["SYNC_MAX_BYTES"]):
        raise PayloadTooLarge()
    try:
        doc = json.loads(raw, parse_constant=_nan)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEnvelope() from exc
    if not isinstance(doc, dict):
        raise ValidationFailed(errors={"_schema": ["the envelope must be a JSON object"]})
    ops = doc.get("ops")
    if isinstance(ops, list) and len(ops) > int(cfg["SYNC_MAX_OPS"]):
        raise PayloadTooLarge("too_many_ops", limit=int(cfg["SYNC_MAX_OPS"]))
    try:
        envelope = EnvelopeIn().load(doc)
    except ValidationError as exc:
        raise ValidationFailed(errors=_flatten(exc.messages)) from exc
    if token_device and envelope["device_id"] != token_device:
        raise ValidationFailed("device_mismatch", errors={"device_id": ["not the device this token was issued to"]})
    return envelope


def _payload_text(raw_op: dict) -> str:
    body = {k: v for k, v in raw_op.items() if k != "seq"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def payload_hash(raw_op: dict) -> str:
    return hashlib.sha256(_payload_text(raw_op).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- results


def _rejected(op_id, code: str, errors: dict | None = None, detail: str | None = None) -> dict:
    from app.errors import message

    out = {"op_id": op_id, "status": "rejected", "code": code, "detail": detail or message(code)}
    if errors:
        out["errors"] = errors
    return out


def _retry(op_id, code: str = "busy") -> dict:
    return {"op_id": op_id, "status": "retry", "code": code, "retry_after_s": RETRY_AFTER_S}


def _result(op_id: str, case: Case, outcome: actions.Outcome) -> dict:
    out = {"op_id": op_id, "status": outcome.status, "case_id": case.id, "case_version": case.version,
           "flags": outcome.flags}
    if outcome.duplicate_of:
        out["duplicate_of"] = outcome.duplicate_of
    if outcome.conflicts:
        out["conflicts"] = outcome.conflicts
    out["missing_photos"] = []  # filled for the whole batch after the commit
    return out


# ---------------------------------------------------------------------------------------------- applying


class _Held(Exception):
    pass


def _dispatch(actor: actions.Actor, op: dict, skew_flag: bool,
              locked: dict[str, Case] | None = None) -> tuple[Case, actions.Outcome]:
    """Apply one op. ``locked``: the cases this transaction has read and locked already (the batch's), used
    as they are instead of being read again; a savepoint rolled back expires what it changed, so they
    reload themselves when that matters."""
    kind = op["type"]
    if kind == "report.create":
        return reports.create_case(actor, op["report"], skew_flag=skew_flag)
    case = (locked or {}).get(op["case_id"]) or actions.get_case(op["case_id"], lock=True)
    if case is None or not case_visible(case, actor.user):
        raise _Held()  # out of scope is answered as unknown: nothing tells an outsider the case exists
    case, redirected = actions.follow_merges(case, lock=True)
    if kind == "case.update":
        outcome = merge.update_case(actor, case, op["base_version"], op["changes"], redirected=redirected)
    elif kind == "case.note":
        outcome = notes.add_note(actor, case, op["note"], redirected=redirected)
    else:
        params = {k: op.get(k) for k in ("note", "reason", "assignee", "unit", "target")}
        outcome = transitions.transition(actor, case, op["action"], op["base_version"], params, redirected=redirected)
    if skew_flag and "clock_skew" not in outcome.flags:
        outcome.flags.append("clock_skew")
    return case, outcome


def _log(op_id: str, digest: str, op: dict, actor: actions.Actor, result: dict, received_at: datetime) -> OpLog:
    return unit_of_work.current().add(
        OpLog, op_id=op_id, payload_hash=digest, type=op["type"], user_id=actor.user.id,
        device_id=actor.device_id or "", seq=op.get("seq"), case_id=result.get("case_id"), status=result["status"],
        result=result, received_at=received_at, applied_at=utcnow())


class _Unsafe(Exception):
    """An op failed half-way outside a savepoint: run the batch again with a savepoint per op."""


def _uuid(value) -> bool:
    return isinstance(value, str) and len(value) == 36


def _op_ids(ops: list) -> list[str]:
    return sorted({op["op_id"].lower() for op in ops if isinstance(op, dict) and _uuid(op.get("op_id"))})


def _report_ids(ops: list) -> list[str]:
    return sorted({op["report"]["id"].lower() for op in ops if isinstance(op, dict)
                   and op.get("type") == "report.create" and isinstance(op.get("report"), dict)
                   and _uuid(op["report"].get("id"))})


def _op_types_by_case(ops: list) -> dict[str, set]:
    kinds: dict[str, set] = {}
    for op in ops:
        case_id = op.get("case_id") if isinstance(op, dict) else None
        if isinstance(case_id, str):
            kinds.setdefault(case_id, set()).add(op.get("type"))
    return kinds


def _lowest_bases(ops: list) -> dict[str, int]:
    """Per case, the lowest base_version its case.update ops name (what the merges will read from)."""
    bases: dict[str, int] = {}
    for op in ops:
        if isinstance(op, dict) and op.get("type") == "case.update" and isinstance(op.get("case_id"), str) \
                and type(op.get("base_version")) is int:
            bases[op["case_id"]] = min(bases.get(op["case_id"], op["base_version"]), op["base_version"])
    return bases


class Batch:
    """What one attempt at a batch knows up front: one query each for the ops already logged or held and
    for the reports' case ids, instead of a look-up per op."""

    def __init__(self, ops: list, safe: bool, loaded: dict[str, Case], neighbours: duplicates.Neighbours | None):
        self.safe = safe
        self.loaded = loaded
        op_ids, report_ids = _op_ids(ops), _report_ids(ops)
        self.logged = logged_ops(op_ids)
        self.held = {row.op_id: row for row in db.session.scalars(
            select(HeldOp).where(HeldOp.op_id.in_(op_ids)))} if op_ids else {}
        self.waiting_cases = set(db.session.scalars(
            select(HeldOp.case_id).where(HeldOp.case_id.in_(report_ids)).distinct())) if report_ids else set()
        unit_of_work.current().existing_ids = set(db.session.scalars(
            select(Case.id).where(Case.id.in_(report_ids)))) if report_ids else set()
        if neighbours is not None:
            duplicates.use_neighbours(neighbours)
        # Cases that only case.update ops (or only case.note ops) of this batch touch are written as rows,
        # without savepoints, from what is read here in one query each.
        self.fast_updates: set[str] = set()
        self.fast_notes: set[str] = set()
        if not safe:
            self._read_fast_paths(ops, set(report_ids))

    def _only(self, kinds: dict[str, set], kind: str, report_ids: set[str]) -> set[str]:
        return {cid for cid, types in kinds.items() if types == {kind} and cid in self.loaded
                and self.loaded[cid].state != "merged" and cid not in report_ids}

    def _read_fast_paths(self, ops: list, report_ids: set[str]) -> None:
        kinds = _op_types_by_case(ops)
        uow = unit_of_work.current()
        self.fast_updates = self._only(kinds, "case.update", report_ids)
        bases = _lowest_bases(ops)
        uow.prefetch({cid: self.loaded[cid] for cid in self.fast_updates},
                     {cid: bases[cid] for cid in self.fast_updates if cid in bases})
        self.fast_notes = self._only(kinds, "case.note", report_ids)
        uow.notes.update(notes.existing_notes([
            op["note"]["id"] for op in ops if op.get("type") == "case.note" and op.get("case_id") in self.fast_notes
            and isinstance(op.get("note"), dict) and isinstance(op["note"].get("id"), str)]))

    def no_fast_updates(self) -> None:
        """An op runs in a savepoint: what was read up front could outlive a rollback, so forget it."""
        self.fast_notes = set()
        if self.fast_updates:
            self.fast_updates = set()
            unit_of_work.current().forget_prefetched()


class Prepared:
    """One op after the checks that need no write lock: either its answer already (refused, or logged
    before: a replay) or the validated op and the hash of what was sent."""

    __slots__ = ("raw", "op", "digest", "answer", "plan")

    def __init__(self, raw, op=None, digest=None, answer=None):
        self.raw, self.op, self.digest, self.answer = raw, op, digest, answer
        self.plan: reports.ReportPlan | None = None  # a report's checks and place, worked out before the lock


def logged_ops(op_ids: list[str]) -> dict:
    """The op log's rows for these op ids, in one query: the columns a replay is answered from, as plain
    rows (no ORM objects to build, nor to expire at the commit)."""
    if not op_ids:
        return {}
    t = OpLog.__table__.c
    return {row.op_id: row for row in db.session.execute(
        select(t.op_id, t.payload_hash, t.status, t.result).where(t.op_id.in_(op_ids)))}


def _logged_answer(logged: OpLog, op_id: str, digest: str) -> dict:
    if logged.payload_hash != digest:
        return _rejected(op_id, "op_id_reused")
    return {**logged.result, "status": "duplicate", "original_status": logged.status}


def prepare(raw_op, logged: dict[str, OpLog]) -> Prepared:
    """Validate one op; an op logged before is answered from the log without validating it again."""
    if not isinstance(raw_op, dict):
        return Prepared(raw_op, answer=_rejected(None, "validation_failed", {"op": ["an op must be a JSON object"]}))
    try:
        text = _payload_text(raw_op)
        digest = hashlib.sha256(text.encode()).hexdigest()
    except (UnicodeEncodeError, RecursionError):
        # "\ud800" is valid JSON but no text (an unpaired surrogate): it can be neither hashed, stored nor
        # echoed back in the answer; nor can an op nested too deep. Refused alone, op_id not echoed.
        return Prepared(raw_op, answer=_rejected(None, "validation_failed", {
            "op": ["unpaired UTF-16 surrogate or nesting too deep"]}))
    op_id = raw_op.get("op_id") if isinstance(raw_op.get("op_id"), str) else None
    # A NUL anywhere shows in the JSON text as \u0000 (a lone surrogate failed the encode above): only
    # then, or with an odd "seq" (left out of the text), is the op walked for the paths at fault.
    seq = raw_op.get("seq")
    nul = nul_paths(raw_op) if "\\u0000" in text or not (seq is None or type(seq) is int) else None
    if nul:  # PostgreSQL text cannot hold NUL: the op could only ever fail (a "retry" for ever)
        return Prepared(raw_op, answer=_rejected(None if op_id is None or "\x00" in op_id else op_id,
                                                 "validation_failed", {path: [NUL_MESSAGE] for path in nul}))
    if op_id and op_id.lower() in logged:
        return Prepared(raw_op, digest=digest, answer=_logged_answer(logged[op_id.lower()], op_id.lower(), digest))
    kind = raw_op.get("type")
    schema = OP_SCHEMAS.get(kind) if isinstance(kind, str) else None  # "type": [] is unhashable
    if schema is None:
        return Prepared(raw_op, answer=_rejected(op_id, "unknown_op_type",
                                                 {"type": [f"one of {', '.join(OP_SCHEMAS)}"]}))
    op = fast_load(kind, raw_op)  # the well-formed common ops, by hand; the schema judges all the rest
    if op is None:
        try:
            op = schema.load(raw_op)
        except ValidationError as exc:
            return Prepared(raw_op, answer=_rejected(op_id, "validation_failed", _flatten(exc.messages)))
    return Prepared(raw_op, op=op, digest=digest)


def apply_op(batch: Batch, item: Prepared, actor_user: User, device_id: str, client_time: datetime | None,
             skew_flag: bool) -> dict:
    """Apply one prepared op inside the batch's transaction and return its result (never raises for bad
    input)."""
    if item.answer is not None:
        return item.answer
    op, digest = item.op, item.digest
    op_id = op["op_id"].lower()
    logged = batch.logged.get(op_id)
    if logged is not None:
        return _logged_answer(logged, op_id, digest)
    held = batch.held.get(op_id)
    if held is not None:
        if held.payload_hash != digest:
            return _rejected(op_id, "op_id_reused")
        return {"op_id": op_id, "status": "held", "code": "unknown_case", "case_id": held.case_id}

    actor = actions.Actor(user=actor_user, device_id=device_id, op_id=op_id, client_time=client_time)
    if op["type"] == "report.create" and not batch.safe:
        result = _create_fast(batch, op, digest, actor, skew_flag, item.plan)
    elif (op["type"] == "case.update" and op["case_id"] in batch.fast_updates
          or op["type"] == "case.note" and op["case_id"] in batch.fast_notes):
        result = _on_locked_case_fast(batch, op, digest, actor, skew_flag)
    else:
        batch.no_fast_updates()
        result = _apply_in_savepoint(batch, op, item.raw, digest, actor, skew_flag)
    if op["type"] == "report.create" and result["status"] == "applied" and result["case_id"] in batch.waiting_cases:
        batch.no_fast_updates()
        release_held(result["case_id"])
    return result


def _create_fast(batch: Batch, op: dict, digest: str, actor: actions.Actor, skew_flag: bool,
                 plan: reports.ReportPlan | None) -> dict:
    """A report, without a savepoint and without ORM objects: every check that can refuse it runs before
    its first row is made, and the rows of the whole batch go to the database together at the end, one
    Core INSERT per table."""
    if plan is not None:
        actor.now = plan.now
    try:
        with unit_of_work.current().bulk():
            case, outcome = reports.create_case(actor, op["report"], skew_flag=skew_flag, plan=plan)
    except DomainError as exc:
        return _rejected(op["op_id"].lower(), exc.code, exc.errors)
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("report %s failed half-way; the batch runs again op by op", op["op_id"])
        raise _Unsafe() from exc
    result = _result(actor.op_id, case, outcome)
    with unit_of_work.current().bulk():
        batch.logged[actor.op_id] = _log(actor.op_id, digest, op, actor, result, actor.now)
    return result


def _on_locked_case_fast(batch: Batch, op: dict, digest: str, actor: actions.Actor, skew_flag: bool) -> dict:
    """A merge (case.update) or a note on a case read (and, on PostgreSQL, locked) up front, without a
    savepoint: everything that can refuse it is checked before its first write; its rows and log row go in
    with the batch's."""
    case = batch.loaded[op["case_id"]]
    try:
        with unit_of_work.current().bulk():
            if op["type"] == "case.update":
                outcome = merge.update_case(actor, case, op["base_version"], op["changes"])
            else:
                outcome = notes.add_note(actor, case, op["note"])
    except DomainError as exc:
        return _rejected(actor.op_id, exc.code, exc.errors)
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("%s %s failed half-way; the batch runs again op by op", op["type"], op["op_id"])
        raise _Unsafe() from exc
    if skew_flag and "clock_skew" not in outcome.flags:
        outcome.flags.append("clock_skew")
    result = _result(actor.op_id, case, outcome)
    with unit_of_work.current().bulk():
        batch.logged[actor.op_id] = _log(actor.op_id, digest, op, actor, result, actor.now)
    return result


def _apply_in_savepoint(batch: Batch, op: dict, raw_op: dict, digest: str, actor: actions.Actor,
                        skew_flag: bool) -> dict:
    op_id = actor.op_id
    unit_of_work.flush()  # the reports queued before this op are read (or pointed at) by it
    mark = unit_of_work.current().mark()
    savepoint = db.session.begin_nested()
    try:
        try:
            case, outcome = _dispatch(actor, op, skew_flag, batch.loaded)
        except _Held:
            held = HeldOp(op_id=op_id, payload_hash=digest, case_id=op["case_id"].lower(), type=op["type"],
                          user_id=actor.user.id, device_id=actor.device_id, seq=op.get("seq"), payload=raw_op,
                          client_time=actor.client_time, received_at=actor.now)
            db.session.add(held)
            db.session.flush()
            savepoint.commit()
            batch.held[op_id] = held
            batch.waiting_cases.add(held.case_id)
            return {"op_id": op_id, "status": "held", "code": "unknown_case", "case_id": held.case_id}
        result = _result(op_id, case, outcome)
        batch.logged[op_id] = _log(op_id, digest, op, actor, result, actor.now)
        db.session.flush()
        savepoint.commit()
        return result
    except DomainError as exc:
        savepoint.rollback()
        unit_of_work.current().restore(mark)
        batch.logged.pop(op_id, None)
        return _rejected(op_id, exc.code, exc.errors)
    except IntegrityError:
        # Another request logged this op_id between our look-up and our insert: it is a replay.
        savepoint.rollback()
        unit_of_work.current().restore(mark)
        batch.logged.pop(op_id, None)
        logged = db.session.get(OpLog, op_id)
        if logged is not None:
            return {**logged.result, "status": "duplicate", "original_status": logged.status}
        log.exception("integrity error applying op %s", op_id)
        return _retry(op_id, "busy")
    except OperationalError:
        raise  # locks, deadlocks, a lost connection: the whole batch is retried
    except Exception:
        savepoint.rollback()
        unit_of_work.current().restore(mark)
        batch.logged.pop(op_id, None)
        log.exception("unexpected error applying op %s", op_id)
        return _retry(op_id, "server_error")


def release_held(case_id: str) -> list[str]:
    """Apply, in arrival order, the ops that were waiting for this case; log each with its outcome."""
    unit_of_work.flush()
    held_ops = list(db.session.scalars(select(HeldOp).where(HeldOp.case_id == case_id)
                                       .order_by(HeldOp.received_at, HeldOp.seq, HeldOp.op_id)))
    done = []
    for held in held_ops:
        user = db.session.get(User, held.user_id)
        op = OP_SCHEMAS[held.type].load(held.payload)
        actor = actions.Actor(user=user, device_id=held.device_id, op_id=held.op_id, client_time=held.client_time)
        mark = unit_of_work.current().mark()
        savepoint = db.session.begin_nested()
        try:
            if not user.is_active:
                raise actions.Refused("user_disabled", status=403)
            case, outcome = _dispatch(actor, op, False)
            result = _result(held.op_id, case, outcome)
            result["was_held"] = True
            _log(held.op_id, held.payload_hash, op, actor, result, held.received_at)
            db.session.delete(held)
            db.session.flush()
            savepoint.commit()
        except DomainError as exc:
            savepoint.rollback()
            unit_of_work.current().restore(mark)
            result = _rejected(held.op_id, exc.code, exc.errors)
            result["case_id"] = case_id
            result["was_held"] = True
            # A held op that fails on arrival is logged as rejected: its phone dropped it long ago, so
            # the outcome must stay answerable (a replay gets it back, a reviewer can read it).
            _log(held.op_id, held.payload_hash, op, actor, result, held.received_at)
            db.session.delete(held)
            db.session.flush()
        done.append(held.op_id)
    return done


def _lock_cases(ops: list) -> dict[str, Case]:
    """Read the batch's cases and take their per-case locks up front, in id order. Taken op by op, in the
    order sent, two batches touching the same cases in different orders wait on each other in a cycle
    (PostgreSQL deadlocks: a second lost each time, then the whole batch answered ``retry``). On SQLite,
    BEGIN IMMEDIATE has made this the one writer already."""
    ids = sorted({op["case_id"].lower() for op in ops
                  if isinstance(op, dict) and isinstance(op.get("case_id"), str) and len(op["case_id"]) <= 36})
    if not ids:
        return {}
    # populate_existing: read under the lock, a case already in the session is refreshed, not taken as it
    # was (the read part's commit no longer expires what it loaded; it loads no case today)
    stmt = select(Case).where(Case.id.in_(ids)).order_by(Case.id).execution_options(populate_existing=True)
    if db.session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return {case.id: case for case in db.session.scalars(stmt)}


def sync(user: User, token_device: str | None, raw: bytes) -> dict:
    """Handle ``POST /api/v1/sync``: answer every op, commit once, retry the batch on lock trouble."""
    envelope = parse_envelope(raw, token_device)
    user = getattr(user, "_get_current_object", lambda: user)()  # the user, not the request's proxy to it
    now = utcnow()
    client_time = envelope.get("client_time")
    skew = (client_time - now).total_seconds() if client_time else None
    skew_flag = skew is not None and abs(skew) > float(current_app.config["CLOCK_SKEW_FLAG_S"])
    ops = envelope["ops"]
    user_id = user.id
    # First, without the write lock: answer replays from the log and validate the rest. On SQLite this
    # runs beside another worker's batch; only what follows queues for the one writer.
    # UUID-shaped only: 36 NULs (or other non-ASCII) as an id would fail the query on PostgreSQL (a 500)
    op_ids = sorted({op["op_id"].lower() for op in ops if isinstance(op, dict) and isinstance(op.get("op_id"), str)
                     and _UUID_SHAPE.fullmatch(op["op_id"])})
    logged = logged_ops(op_ids)
    prepared = [prepare(raw_op, logged) for raw_op in ops]
    neighbours = _plan_reports(prepared, user, envelope["device_id"], client_time, skew_flag)
    # A batch answered in full already (a resent outbox: replays and refusals) has nothing to apply: which
    # photos its cases still lack is read now, in this read transaction, and the write transaction only
    # records the device.
    answered = all(item.answer is not None for item in prepared)
    if answered:
        _fill_missing_photos([item.answer for item in prepared])
    # This transaction only read: ending it need not expire what it loaded (the user would be read again
    # as the write transaction's first statement, inside the write turn).
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    begin = set_begin_mode("IMMEDIATE")
    try:
        results = _apply_batch(user_id, prepared, envelope, client_time, skew_flag, now, neighbours)
    finally:
        reset_begin_mode(begin)
    if not answered:
        # After the commit, outside the write lock: which photos the cases still lack. (Should this read
        # fail, the batch stands and a resend gets the same answers as duplicates.)
        with read_only_transactions():
            _fill_missing_photos(results)
            db.session.commit()
    return {"server_time": now.isoformat(), "clock_skew_s": None if skew is None else round(skew, 1),
            "results": results}


def _plan_reports(prepared: list[Prepared], user: User, device_id: str, client_time,
                  skew_flag: bool) -> duplicates.Neighbours | None:
    """Work out each valid report's checks, place, flags and first stage from reference data, and read the
    open cases around them, before the write lock: what is left under it is the existence check, the
    duplicate look-up in memory and the rows."""
    places = []
    for item in prepared:
        if item.answer is None and item.op["type"] == "report.create":
            actor = actions.Actor(user=user, device_id=device_id, op_id=item.op["op_id"].lower(),
                                client_time=client_time)
            try:
                item.plan = plan = reports.plan_report(actor, item.op["report"], skew_flag=skew_flag)
            except DBAPIError:
                raise  # the database, not the op: the request fails and the phone sends again
            except Exception:  # planned again under the lock, where a failure is the op's own (a retry)
                log.exception("planning report %s failed", item.op["op_id"])
                continue
            if plan.values and plan.values["lat"] is not None:
                places.append((plan.values["category"], plan.values["lat"], plan.values["lon"]))
    neighbours = duplicates.read_neighbours(places, utcnow())
    unit_of_work.discard()  # its caches belong to this (read) transaction
    return neighbours


def _apply_batch(user_id: int, prepared: list[Prepared], envelope: dict, client_time, skew_flag: bool,
                 now: datetime, neighbours: duplicates.Neighbours | None) -> list[dict]:
    """The write part of a sync: one transaction, retried on lock trouble; op by op after a failure."""
    ops = [item.raw for item in prepared]
    results: list[dict] = []
    safe = False
    for attempt in range(BATCH_ATTEMPTS):
        try:
            unit_of_work.discard()
            user = db.session.get(User, user_id)
            # only the ops that passed validation: a bad case_id must not fail the whole batch
            valid = [item.raw for item in prepared if item.answer is None]
            # the cases out of the user's scope are left to the op-by-op path, which holds their ops
            visible = {cid: case for cid, case in _lock_cases(valid).items() if case_visible(case, user)}
            batch = Batch(valid, safe, visible, neighbours)
            results = [apply_op(batch, item, user, envelope["device_id"], client_time, skew_flag)
                       for item in prepared]
            _record_device(user, envelope, now)
            unit_of_work.finish()
            db.session.flush()
            db.session.commit()
            return results
        except (_Unsafe, IntegrityError):
            # A report broke half-way, or (PostgreSQL) another request inserted one of our ids first: go
            # again with a savepoint per op, which sorts each op out on its own.
            db.session.rollback()
            unit_of_work.discard()
            if safe or attempt == BATCH_ATTEMPTS - 1:
                log.exception("sync batch failed in safe mode")
                return [_retry(op.get("op_id") if isinstance(op, dict) else None, "server_error") for op in ops]
            safe = True
        except DBAPIError as exc:
            db.session.rollback()
            unit_of_work.discard()
            if not transient_error(exc) or attempt == BATCH_ATTEMPTS - 1:
                log.warning("sync batch gave up after %d attempts: %s", attempt + 1, exc)
                return [_retry(op.get("op_id") if isinstance(op, dict) else None) for op in ops]
            time.sleep(0.05 * (2 ** attempt))
    return results


def _fill_missing_photos(results: list[dict]) -> None:
    ids = sorted({r["case_id"] for r in results if r.get("status") in ("applied", "conflict", "duplicate")
                  and r.get("case_id")})
    if not ids:
        return
    missing = notes.missing_photos(ids)
    for r in results:
        if r.get("case_id") in missing and r.get("status") in ("applied", "conflict", "duplicate"):
            r["missing_photos"] = missing[r["case_id"]]


_device_upserts: dict[tuple[str, bool], object] = {}


def _record_device(user: User, envelope: dict, now: datetime) -> None:
    """The phone's last contact and its outbox, in one upsert (no ORM load of the device and its user
    inside the write transaction; the statement is built once). Without autoflush: the cases changed so
    far are flushed once, after ``unit_of_work.finish`` has stamped them, as one UPDATE each (flushed here, each
    would be updated twice: a new row version and an entry in every index of ``cases`` for the stamp
    alone)."""
    outbox = envelope.get("outbox")
    dialect = db.session.get_bind().dialect.name
    key = (dialect, outbox is not None)
    if key not in _device_upserts:
        table = Device.__table__
        changed = ["user_id", "last_seen", "last_sync_at"]
        if outbox is not None:
            changed += ["outbox_pending", "outbox_oldest"]
        upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(
            id=bindparam("id"), first_seen=bindparam("now"), user_id=bindparam("user_id"),
            last_seen=bindparam("now"), last_sync_at=bindparam("now"),
            outbox_pending=bindparam("pending"), outbox_oldest=bindparam("oldest"))
        _device_upserts[key] = upsert.on_conflict_do_update(
            index_elements=[table.c.id], set_={name: upsert.excluded[name] for name in changed})
    pending = (outbox.get("pending") or 0) if outbox is not None else 0
    params = {"id": envelope["device_id"], "now": now, "user_id": user.id, "pending": pending,
              "oldest": outbox.get("oldest") if outbox is not None and pending else None}
    with db.session.no_autoflush:
        db.session.execute(_device_upserts[key], params)


__all__ = ["sync"]
