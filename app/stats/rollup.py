"""Keeping the figures' roll-up (app/stats/models.py): triggers, fold, rebuild.

The triggers are the only writers of deltas, so every change to ``cases`` and ``case_stages`` is counted in
the transaction that makes it, whichever code makes it (services, bulk SQL, a console). A trigger appends its
case's new contribution minus its old one for each level of ROLLUP_LEVELS (one row per level when the key
did not move), and only when a column a figure reads changed.

``install(connection)`` creates the triggers (both engines; ``db.create_all`` calls it through a DDL event
and a migration calls it too), ``rebuild(connection)`` recomputes the sums from the cases and stages
(``flask stats rebuild``), ``fold(connection)`` moves the appended deltas into the sums (the figures call it
when enough have piled up).

Cost per write (bench figures in the report of issue 5): on PostgreSQL a plpgsql call appending one small
row per level; on SQLite the mere presence of a trigger on ``cases`` makes each of its ~30 index updates
dearer (about 2.5 µs each), which is most of what the roll-up adds to a report there.
"""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from app.cases.models import OPEN_STATES, RISK_LEVELS, STATES
from app.extensions import db
from app.stats.models import (
    BUCKETS_PER_BAND,
    DELTA_TABLES,
    HOUR_BANDS,
    REPORTED_COUNTERS,
    REPORTED_LEVELS,
    ROLLUP_LEVELS,
    ROLLUP_TABLES,
    stats_finished,
    stats_hours,
    stats_reported,
)

# Days are China Standard Time days, as the dashboard's dates are (app/stats/schemas.py: a date is its
# midnight at +08:00), so a period given in dates reads whole days only.
DAY_OFFSET_HOURS = 8
FOLD_LOCK_KEY = 0x57A75  # PostgreSQL advisory lock: one fold at a time


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def day_sql(dialect: str, column: str) -> str:
    """SQL: the China Standard Time day of a UTC timestamp column."""
    if dialect == "postgresql":
        return f"CAST(({column} AT TIME ZONE 'UTC') + INTERVAL '{DAY_OFFSET_HOURS} hours' AS DATE)"
    return f"date({column}, '+{DAY_OFFSET_HOURS} hours')"


def bucket_sql(dialect: str, column: str) -> str:
    """SQL: the hour bucket (app/stats/models.py HOUR_BANDS) of an hours column."""
    def floor(x: str) -> str:  # of a non-negative number: CAST truncates on SQLite, rounds on PostgreSQL
        return f"CAST(FLOOR({x}) AS INTEGER)" if dialect == "postgresql" else f"CAST({x} AS INTEGER)"

    whens = [f"WHEN {column} < 1 THEN 0"]
    for band, (start, width) in enumerate(HOUR_BANDS):
        end = start + width * BUCKETS_PER_BAND
        whens.append(f"WHEN {column} < {end} THEN {band * BUCKETS_PER_BAND} + {floor(f'({column} - {start}) / {width}')}")
    return f"CASE {' '.join(whens)} ELSE {len(HOUR_BANDS) * BUCKETS_PER_BAND} END"


def _reported_values(r: str) -> dict[str, str]:
    """Counter → SQL expression of one case row ``r`` (NEW, OLD or a table alias)."""
    is_open = f"{r}.state IN {_in(OPEN_STATES)}"
    values = {
        "total": "1",
        "accepted": _flag(f"{r}.accepted_at IS NOT NULL OR {r}.handled_on_spot"),
        "closed": _flag(f"{r}.state = 'closed'"),
        "open": _flag(is_open),
    }
    values.update({f"state_{s}": _flag(f"{r}.state = '{s}'") for s in STATES})
    values.update({f"risk_{k}": _flag(f"{r}.risk_level = '{k}'") for k in RISK_LEVELS})
    values.update({f"open_{k}": _flag(f"{r}.risk_level = '{k}' AND {is_open}") for k in RISK_LEVELS})
    assert tuple(values) == REPORTED_COUNTERS
    return values


class Part:
    """What one kind of row contributes to one roll-up table: its keys and counters as SQL of the row, the
    condition for contributing, the levels it is counted at, the columns whose change moves it."""

    def __init__(self, table, source: str, levels, reads, keys, values, condition: str = "1 = 1"):
        self.table, self.source, self.levels, self.reads = table, source, levels, reads
        self.keys, self.values, self.condition = keys, values, condition

    def select(self, dialect: str, r: str, sign: int, level: str, case: str) -> str:
        """SELECT of the contribution of row ``r`` at ``level``, ``case`` naming its case's row."""
        code = f"{case}.{level}_code"
        keys = [f"{code} AS region_code", *(f"{sql} AS {k}" for k, sql in self.keys(dialect, r).items())]
        values = [f"({v}) AS {k}" if sign > 0 else f"-({v}) AS {k}" for k, v in self.values(r).items()]
        return f"SELECT {', '.join(keys + values)}", f"{code} IS NOT NULL AND {self.condition.format(r=r)}"

    @property
    def key_names(self) -> tuple[str, ...]:
        return ("region_code", *self.keys("sqlite", "x"))

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(self.values("x"))


CLOSED = "{r}.state = 'closed' AND {r}.closed_at IS NOT NULL"
ENDED = "{r}.ended_at IS NOT NULL AND {r}.outcome IS NOT NULL"

PARTS = {
    "reported": Part(stats_reported, "case", REPORTED_LEVELS,
                     ("reported_at", "category", "state", "risk_level", "accepted_at", "handled_on_spot"),
                     lambda d, r: {"day": day_sql(d, f"{r}.reported_at"), "category": f"{r}.category"},
                     _reported_values),
    "closed": Part(stats_finished, "case", ROLLUP_LEVELS, ("state", "closed_at", "level", "hours_to_close"),
                   lambda d, r: {"day": day_sql(d, f"{r}.closed_at")},
                   lambda r: {"closed": "1", "closed_grid": _flag(f"{r}.level = 'grid'"),
                              "timed": _flag(f"{r}.hours_to_close IS NOT NULL"), "ended": "0", "on_time": "0"},
                   CLOSED),
    "hours": Part(stats_hours, "case", ROLLUP_LEVELS, ("state", "closed_at", "hours_to_close"),
                  lambda d, r: {"day": day_sql(d, f"{r}.closed_at"), "bucket": bucket_sql(d, f"{r}.hours_to_close")},
                  lambda r: {"n": "1"}, CLOSED + " AND {r}.hours_to_close IS NOT NULL"),
    "stages": Part(stats_finished, "stage", ROLLUP_LEVELS, ("case_id", "ended_at", "outcome"),
                   lambda d, r: {"day": day_sql(d, f"{r}.ended_at")},
                   lambda r: {"closed": "0", "closed_grid": "0", "timed": "0", "ended": "1",
                              "on_time": _flag(f"{r}.outcome = 'on_time'")},
                   ENDED),
}


def _rows(dialect: str, part: Part, r: str, sign: int) -> str:
    """SELECTs (UNION ALL) of trigger row ``r``'s contribution to ``part``, one per level."""
    selects = []
    for level in part.levels:
        if part.source == "case":
            head, where = part.select(dialect, r, sign, level, r)
            selects.append(f"{head} WHERE {where}")
        else:  # a stage counts at its case's regions
            head, where = part.select(dialect, r, sign, level, "c")
            selects.append(f"{head} FROM cases c WHERE c.id = {r}.case_id AND {where}")
    return " UNION ALL ".join(selects)


def _moved_rows(dialect: str, r: str, sign: int) -> str:
    """SELECTs of the ended stages of case row ``r`` at ``r``'s regions: a case that moves takes them along."""
    part = PARTS["stages"]
    selects = []
    for level in part.levels:
        head, where = part.select(dialect, "s", sign, level, r)
        selects.append(f"{head} FROM case_stages s WHERE s.case_id = {r}.id AND {where}")
    return " UNION ALL ".join(selects)


def _same(a: str, b: str, dialect: str) -> str:
    return f"{a} IS NOT DISTINCT FROM {b}" if dialect == "postgresql" else f"{a} IS {b}"


def _update(dialect: str, part: Part) -> str:
    """The UPDATE trigger's statements: where the row's key did not move (the usual case: a transition),
    one delta per level holding NEW − OLD; where it moved, OLD's contribution taken away at the old key and
    NEW's added at the new one."""
    delta = DELTA_TABLES[part.table].name
    columns = ", ".join((*part.key_names, *part.counters))
    old_keys, new_keys = part.keys(dialect, "OLD"), part.keys(dialect, "NEW")
    same_keys = " AND ".join(_same(old_keys[k], new_keys[k], dialect) for k in old_keys)
    cond_old, cond_new = part.condition.format(r="OLD"), part.condition.format(r="NEW")
    old_values, new_values = part.values("OLD"), part.values("NEW")
    diff = ", ".join(f"(CASE WHEN {cond_new} THEN {new_values[k]} ELSE 0 END) - "
                     f"(CASE WHEN {cond_old} THEN {old_values[k]} ELSE 0 END) AS {k}" for k in part.counters)
    kept, moved = [], []
    for level in part.levels:
        if part.source == "case":
            code = f"NEW.{level}_code"
            same = f"{_same(f'OLD.{level}_code', code, dialect)} AND {same_keys}"
            source, old_case, new_case = "", "OLD", "NEW"
            old_from = new_from = ""
        else:
            code = f"c.{level}_code"
            same = f"OLD.case_id = NEW.case_id AND {same_keys}"
            source, old_case, new_case = " FROM cases c WHERE c.id = NEW.case_id AND", "c", "c"
            old_from, new_from = " FROM cases c WHERE c.id = OLD.case_id AND", " FROM cases c WHERE c.id = NEW.case_id AND"
        keys = ", ".join(f"{sql} AS {k}" for k, sql in new_keys.items())
        kept.append(f"SELECT {code} AS region_code, {keys}, {diff}{source or ' WHERE'} {code} IS NOT NULL "
                    f"AND {same} AND ({cond_old} OR {cond_new})")
        for r, sign, case, where_from in (("OLD", -1, old_case, old_from), ("NEW", 1, new_case, new_from)):
            head, where = part.select(dialect, r, sign, level, case)
            moved.append(f"{head}{where_from or ' WHERE'} {where} AND NOT ({same})")
    return (f"INSERT INTO {delta} ({columns}) {' UNION ALL '.join(kept)}; "
            f"INSERT INTO {delta} ({columns}) {' UNION ALL '.join(moved)}")


def _insert(part: Part, rows: str, grouped: bool) -> str:
    """INSERT of ``rows``; ``grouped`` (OLD and NEW), summed by key: an update whose key did not move
    appends one row per level, not two."""
    keys, counters, delta = part.key_names, part.counters, DELTA_TABLES[part.table].name
    columns = ", ".join((*keys, *counters))
    if not grouped:
        return f"INSERT INTO {delta} ({columns}) {rows}"
    sums = ", ".join((*keys, *(f"SUM({c})" for c in counters)))
    return f"INSERT INTO {delta} ({columns}) SELECT {sums} FROM ({rows}) AS delta GROUP BY {', '.join(keys)}"


def _statements(dialect: str) -> dict[str, dict]:
    """Per trigger: its table, the statement for INSERT / UPDATE / DELETE, the columns an UPDATE must change
    to fire it."""
    out = {}
    for name, part in PARTS.items():
        table = "cases" if part.source == "case" else "case_stages"
        reads = part.reads + (tuple(f"{level}_code" for level in part.levels) if part.source == "case" else ())
        # A trigger fires only for rows that count (a new report is no closed case) and, on UPDATE, only when
        # a column it reads changed: a trigger that does nothing still costs a call.
        counts = part.condition != "1 = 1"
        old, new = part.condition.format(r="OLD"), part.condition.format(r="NEW")
        changed = _changed(reads, dialect)
        out[f"stats_{name}"] = {
            "table": table, "reads": reads,
            "insert": _insert(part, _rows(dialect, part, "NEW", 1), False),
            "update": _update(dialect, part),
            "delete": _insert(part, _rows(dialect, part, "OLD", -1), False),
            "when": {"insert": new if counts else None, "delete": old if counts else None,
                     "update": f"({changed}) AND ({old} OR {new})" if counts else changed}}
    levels = tuple(f"{level}_code" for level in PARTS["stages"].levels)
    out["stats_moved"] = {
        "table": "cases", "reads": levels, "insert": None, "delete": None,
        "update": _insert(PARTS["stages"], f"{_moved_rows(dialect, 'OLD', -1)} UNION ALL "
                                           f"{_moved_rows(dialect, 'NEW', 1)}", True),
        "when": {"update": _changed(levels, dialect)}}
    return out


def _changed(reads: tuple[str, ...], dialect: str) -> str:
    op = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in reads)


def trigger_ddl(dialect: str) -> list[str]:
    """The statements that (re)create the roll-up's triggers on ``dialect`` ("sqlite" or "postgresql")."""
    out = []
    for name, spec in _statements(dialect).items():
        table, reads = spec["table"], spec["reads"]
        ops = [op for op in ("insert", "update", "delete") if spec[op]]
        if dialect == "postgresql":
            for op in ops:
                function = f"{name}_{op}"
                out.append(f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                           f"BEGIN {spec[op]}; RETURN NULL; END $$")
                out.append(f"DROP TRIGGER IF EXISTS {function} ON {table}")
                when = f" WHEN ({spec['when'][op]})" if spec["when"].get(op) else ""
                of = f" OF {', '.join(reads)}" if op == "update" else ""
                out.append(f"CREATE TRIGGER {function} AFTER {op.upper()}{of} ON {table} FOR EACH ROW{when} "
                           f"EXECUTE FUNCTION {function}()")
        else:
            for op in ops:
                trigger = f"{name}_{op}"
                out.append(f"DROP TRIGGER IF EXISTS {trigger}")
                when = f" WHEN {spec['when'][op]}" if spec["when"].get(op) else ""
                of = f" OF {', '.join(reads)}" if op == "update" else ""
                out.append(f"CREATE TRIGGER {trigger} AFTER {op.upper()}{of} ON {table} FOR EACH ROW{when} "
                           f"BEGIN {spec[op]}; END")
    return out


def trigger_names() -> list[tuple[str, str]]:
    """(trigger, table) of every roll-up trigger (the PostgreSQL function has the trigger's name)."""
    return [(f"{name}_{op}", spec["table"]) for name, spec in _statements("sqlite").items()
            for op in ("insert", "update", "delete") if spec[op]]


def install(connection: Connection) -> None:
    """Create (or re-create) the roll-up's triggers, dropping any earlier ones first. Called by
    ``db.create_all`` (DDL event) and migrations; the roll-up tables and ``cases`` / ``case_stages`` must
    exist."""
    uninstall(connection)
    for statement in trigger_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


def uninstall(connection: Connection) -> None:
    """Drop the roll-up's triggers, these and any older ones (named ``stats_…``), e.g. for a bulk load that
    goes without them and is rebuilt afterwards."""
    if connection.dialect.name == "postgresql":
        found = connection.execute(text(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relname IN ('cases', 'case_stages') AND t.tgname LIKE 'stats\\_%'")).all()
        for trigger, table in {*found, *trigger_names()}:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {trigger}()")
        return
    found = connection.execute(text(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('cases', 'case_stages') "
        "AND name LIKE 'stats\\_%' ESCAPE '\\'")).all()
    for trigger, _ in {*found, *trigger_names()}:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")


def _install_after_create(target, connection, tables=(), **kw):
    created = {t.name for t in tables}
    if created & {t.name for t in ROLLUP_TABLES}:
        install(connection)


def register() -> None:
    """The triggers come with the tables: ``db.create_all`` installs them (migrations do so themselves)."""
    if not event.contains(db.metadata, "after_create", _install_after_create):
        event.listen(db.metadata, "after_create", _install_after_create)


# ---------------------------------------------------------------------------------------------- rebuild


def _table_parts() -> dict:
    """Roll-up table → the parts that feed it."""
    out: dict = {}
    for part in PARTS.values():
        out.setdefault(part.table, []).append(part)
    return out


def rebuild(connection: Connection) -> dict:
    """Recompute the roll-up tables from ``cases`` and ``case_stages`` (operator repair, migrations, bulk
    loads), in the caller's transaction; returns their row counts. On PostgreSQL writers to the cases wait
    until it commits."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FOLD_LOCK_KEY})
        connection.exec_driver_sql("LOCK TABLE cases, case_stages IN SHARE MODE")
    for table, parts in _table_parts().items():
        connection.execute(DELTA_TABLES[table].delete())
        connection.execute(table.delete())
        keys, counters = parts[0].key_names, parts[0].counters
        for level in parts[0].levels:
            selects = []
            for part in parts:
                if part.source == "case":
                    head, where = part.select(dialect, "c", 1, level, "c")
                    selects.append(f"{head} FROM cases c WHERE {where}")
                else:
                    head, where = part.select(dialect, "s", 1, level, "c")
                    selects.append(f"{head} FROM case_stages s JOIN cases c ON c.id = s.case_id WHERE {where}")
            connection.exec_driver_sql(
                f"INSERT INTO {table.name} ({', '.join(keys)}, {', '.join(counters)}) "
                f"SELECT {', '.join(keys)}, {', '.join(f'SUM({c})' for c in counters)} "
                f"FROM ({' UNION ALL '.join(selects)}) AS done GROUP BY {', '.join(keys)}")
    return {t.name: connection.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar() for t in ROLLUP_TABLES}


# ---------------------------------------------------------------------------------------------- fold


def pending(connection: Connection, at_least: int) -> bool:
    """Whether at least ``at_least`` deltas wait for a fold (reads at most that many rows)."""
    for delta in DELTA_TABLES.values():
        n = connection.execute(text(f"SELECT COUNT(*) FROM (SELECT 1 FROM {delta.name} LIMIT :n) AS p"),
                               {"n": at_least}).scalar()
        if n >= at_least:
            return True
    return False


def fold(connection: Connection) -> int:
    """Move the deltas into the sums (added key by key), in the caller's transaction; returns the deltas
    moved. Every figure is the same before and after.

    On PostgreSQL one statement deletes the deltas it sees and adds exactly those (DELETE … RETURNING), so
    deltas that concurrent writers commit meanwhile wait for the next fold; one fold runs at a time (an
    advisory lock; a second returns at once). SQLite has one writer at a time: add, then delete."""
    pg = connection.dialect.name == "postgresql"
    if pg and not connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FOLD_LOCK_KEY}).scalar():
        return 0
    moved = 0
    for table, parts in _table_parts().items():
        delta, keys, counters = DELTA_TABLES[table].name, parts[0].key_names, parts[0].counters
        key, sums = ", ".join(keys), ", ".join(f"SUM({c})" for c in counters)
        upsert = (f"ON CONFLICT ({key}) DO UPDATE SET "
                  + ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in counters))
        columns = f"{key}, {', '.join(counters)}"
        if pg:
            moved += connection.exec_driver_sql(
                f"WITH moved AS (DELETE FROM {delta} RETURNING {columns}), "
                f"added AS (INSERT INTO {table.name} ({columns}) SELECT {key}, {sums} FROM moved GROUP BY {key} "
                f"{upsert}) SELECT COUNT(*) FROM moved").scalar()
        else:
            connection.exec_driver_sql(
                f"INSERT INTO {table.name} ({columns}) SELECT {key}, {sums} FROM {delta} WHERE 1 "
                f"GROUP BY {key} {upsert}")
            moved += connection.exec_driver_sql(f"DELETE FROM {delta}").rowcount
    return moved
