"""The figures' roll-up (app/stats/rollup.py): kept by triggers through any mix of changes, it equals a fresh
rebuild, and the figures read from it equal the figures read from the cases alone, for any region and period.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from factories import GRID_A1, MICRO_A1_1, MICRO_A1_2, MICRO_A2_1, MICRO_B1_1, TOWN_A, TOWN_B, VILLAGE_A1
from helpers import Phone, report_op, transition_op
from sqlalchemy import func, select, text

MICRO_A2V_1 = "3303810010020101"  # 虹桥社区 (township A's second village)
MICROS = (MICRO_A1_1, MICRO_A1_2, MICRO_A2_1, MICRO_A2V_1, MICRO_B1_1)
CATEGORIES = ("fire_hazard", "sanitation", "road_safety", "public_order")
COLOURS = ("red", "yellow", "blue")
BASE = datetime(2026, 10, 1, tzinfo=UTC)


def _params(action: str, rng: random.Random, others: list[str]) -> dict:
    if action == "assign":
        return {"unit": "消防中队"}
    if action == "resolve":
        return {"note": {"id": str(uuid.uuid4()), "text": "已整改完毕", "photos": []}}
    if action in ("reject", "return", "reopen", "suspend"):
        return {"reason": "测试"}
    if action == "merge":
        return {"target": rng.choice(others)}
    return {}


def _instant(rng: random.Random) -> datetime:
    """Somewhere in October and November 2026, to the microsecond (days cut at odd hours)."""
    return BASE + timedelta(seconds=rng.randrange(0, 60 * 86400), microseconds=rng.randrange(1_000_000))


def _sums(conn) -> dict:
    """Every roll-up's sums by key (sums and deltas added up), zero rows left out (a key whose deltas
    cancel out)."""
    from app.stats.models import DELTA_TABLES
    from app.stats.rollup import PARTS

    out = {}
    for table, delta in DELTA_TABLES.items():
        part = next(p for p in PARTS.values() if p.table is table)
        keys, counters = part.key_names, part.counters
        both = f"SELECT * FROM {table.name} UNION ALL SELECT * FROM {delta.name}"
        for row in conn.execute(text(
                f"SELECT {', '.join(keys)}, {', '.join(f'SUM({c})' for c in counters)} FROM ({both}) AS b "
                f"GROUP BY {', '.join(keys)}")):
            values = tuple(int(v) for v in row[len(keys):])
            if any(values):
                out[(table.name, *(str(k) for k in row[:len(keys)]))] = values
    return out


def _mix(app, rng: random.Random, steps: int) -> None:
    """Create cases and move them at random through the workflow, with edits (colour, category, moves to
    another micro-grid), then shift their times around as the dashboards' history would have them."""
    from app.cases import merge, reports, transitions, unit_of_work, workflow
    from app.cases.actions import Actor
    from app.cases.models import OPEN_STATES, Case, CaseStage
    from app.errors import DomainError
    from app.extensions import db
    from app.stats import rollup
    from app.users.models import User

    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        ids = []
        for step in range(steps):
            actor = Actor(user=admin)
            if not ids or rng.random() < 0.25:
                report = {"id": str(uuid.uuid4()), "category": rng.choice(CATEGORIES),
                          "risk_level": rng.choice(COLOURS), "description": f"随机事件 {step}",
                          "micro_grid_id": rng.choice(MICROS), "location": None,
                          "handled_on_spot": rng.random() < 0.1}
                case, _ = reports.create_case(actor, report)
                ids.append(case.id)
            else:
                case = db.session.get(Case, rng.choice(ids))
                if rng.random() < 0.3 and case.state in OPEN_STATES:
                    changes = rng.choice([{"risk_level": rng.choice(COLOURS)}, {"category": rng.choice(CATEGORIES)},
                                          {"micro_grid_id": rng.choice(MICROS)}, {"micro_grid_id": MICRO_B1_1}])
                    merge.update_case(actor, case, case.version, changes)
                else:
                    actions = [a for (state, a) in workflow.TABLE if state == case.state]
                    if case.suspended_at is not None:
                        actions.append("resume")
                    if not actions:
                        continue
                    action = rng.choice(actions)
                    others = [i for i in ids if i != case.id] or [case.id]
                    try:
                        transitions.transition(actor, case, action, case.version, _params(action, rng, others))
                    except DomainError:
                        db.session.rollback()
                        unit_of_work.discard()
                        continue
            unit_of_work.finish()
            db.session.commit()
            if step % 10 == 9:
                # History: times moved by hand (the triggers see plain UPDATEs too).
                for case_id in rng.sample(ids, min(4, len(ids))):
                    case = db.session.get(Case, case_id)
                    case.reported_at = _instant(rng)
                    if case.accepted_at is not None:
                        case.accepted_at = case.reported_at + timedelta(hours=rng.randrange(1, 30))
                    if case.closed_at is not None:
                        case.closed_at = case.reported_at + timedelta(hours=rng.randrange(1, 400))
                        case.hours_to_close = rng.choice([None, round(rng.uniform(0, 3000), 2), 0.0, 64.0, 2368.0])
                    for stage in db.session.scalars(select(CaseStage).where(CaseStage.case_id == case_id)):
                        if stage.ended_at is not None:
                            stage.ended_at = _instant(rng)
                            stage.outcome = rng.choice(["on_time", "overdue"])
                db.session.commit()
            if step % 37 == 36:
                with db.engine.begin() as conn:
                    rollup.fold(conn)
        transitions.escalate_overdue(BASE + timedelta(days=400))
        unit_of_work.finish()
        db.session.commit()


def _check(app, rng: random.Random) -> None:
    from app.extensions import db
    from app.regions.models import Region
    from app.stats import rollup, services

    with app.app_context():
        with db.engine.connect() as conn:
            kept = _sums(conn)
            rollup.rebuild(conn)
            assert _sums(conn) == kept  # the triggers kept what a rebuild computes
            conn.rollback()
        db.session.remove()

        regions = [db.session.get(Region, code) for code in (
            db.session.scalar(select(Region.code).where(Region.level == "city")), TOWN_A, TOWN_B, VILLAGE_A1,
            GRID_A1)]
        periods = [(BASE, BASE + timedelta(days=61)),  # whole days only (UTC midnights: 08:00 in China)
                   (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC)),
                   (BASE + timedelta(hours=5), BASE + timedelta(hours=20)),  # inside one day
                   (BASE + timedelta(hours=5), datetime(2027, 6, 1, 3, tzinfo=UTC))]  # past every row
        periods += [tuple(sorted((_instant(rng), _instant(rng)))) for _ in range(6)]
        now = BASE + timedelta(days=20)
        for root in regions:
            for start, end in periods:
                fast = services.compute(root, start, end, now)
                slow = services.compute(root, start, end, now, use_rollup=False)
                assert fast == slow, (root.code, start, end)
        # Something was counted at all.
        assert services.compute(regions[0], *periods[1], now)["total"] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_triggers_keep_the_rollup_through_a_random_mix(app, seed):
    rng = random.Random(seed)
    _mix(app, rng, 160)
    _check(app, rng)


def test_reports_through_the_sync_are_counted(app, client, auth):
    """The sync engine's batched inserts fire the triggers like any other write."""
    from app.extensions import db
    from app.stats import rollup

    phone = Phone(client, auth, "wanggeyuan")
    results = phone.sync(*[report_op(micro_grid=MICRO_A1_1, risk=COLOURS[i % 3]) for i in range(5)],
                         client_time="now")["results"]
    assert all(r["status"] == "applied" for r in results)
    reviewer = Phone(client, auth, "reviewer")
    assert reviewer.one(transition_op(results[0]["case_id"], 1, "accept"))["status"] == "applied"
    with app.app_context():
        with db.engine.connect() as conn:
            kept = _sums(conn)
            town = conn.execute(text(
                "SELECT SUM(total), SUM(accepted) FROM (SELECT * FROM stats_reported UNION ALL "
                "SELECT * FROM stats_reported_delta) AS b WHERE region_code = :t"), {"t": TOWN_A}).one()
            rollup.rebuild(conn)
            assert _sums(conn) == kept
            conn.rollback()
        from app.cases.models import Case

        assert tuple(town) == (db.session.scalar(select(func.count()).where(Case.township_code == TOWN_A)),
                               db.session.scalar(select(func.count()).where(Case.township_code == TOWN_A,
                                                                            Case.accepted_at.is_not(None))))


def test_fold_moves_the_deltas_into_the_sums(app):
    from app.extensions import db
    from app.stats import rollup

    rng = random.Random(3)
    _mix(app, rng, 60)
    with app.app_context(), db.engine.begin() as conn:
        before = _sums(conn)
        pending = conn.execute(text("SELECT COUNT(*) FROM stats_reported_delta")).scalar()
        assert pending > 0 and rollup.pending(conn, pending) and not rollup.pending(conn, pending + 1000)
        assert rollup.fold(conn) >= pending
        assert _sums(conn) == before
        for table in ("stats_reported_delta", "stats_finished_delta", "stats_hours_delta"):
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
        assert rollup.fold(conn) == 0  # nothing left to fold


def test_whole_days_are_china_days():
    from app.stats.services import whole_days

    utc = UTC
    # 2026-10-04 in China is [10-03 16:00Z, 10-04 16:00Z).
    assert whole_days(datetime(2026, 10, 3, 16, tzinfo=utc), datetime(2026, 10, 5, 16, tzinfo=utc)) == (
        datetime(2026, 10, 4).date(), datetime(2026, 10, 6).date())
    # From 10-04 01:00 to 10-05 23:00 in China: no whole day (10-04 starts before, 10-05 ends after).
    assert whole_days(datetime(2026, 10, 3, 17, tzinfo=utc), datetime(2026, 10, 5, 15, tzinfo=utc)) is None
    assert whole_days(datetime(2026, 10, 3, 17, tzinfo=utc), datetime(2026, 10, 6, 16, tzinfo=utc)) == (
        datetime(2026, 10, 5).date(), datetime(2026, 10, 7).date())


def test_cli_rebuild_repairs_a_bulk_load(app, runner):
    """Rows loaded without the triggers (as a bulk load does): ``flask stats rebuild`` puts them back."""
    from app.extensions import db
    from app.stats import rollup

    _mix(app, random.Random(4), 40)
    with app.app_context():
        with db.engine.begin() as conn:
            kept = _sums(conn)
            assert kept
            rollup.uninstall(conn)
            conn.execute(text("DELETE FROM stats_reported"))
            conn.execute(text("DELETE FROM stats_reported_delta"))
            conn.execute(text("UPDATE cases SET risk_level = 'red'"))  # not counted: no triggers
        db.session.remove()
    result = runner.invoke(args=["stats", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "roll-up rebuilt" in result.output and "stats_reported" in result.output
    with app.app_context(), db.engine.begin() as conn:
        rebuilt = _sums(conn)
        assert rebuilt != kept and {k for k in rebuilt if k[0] == "stats_finished"} == {
            k for k in kept if k[0] == "stats_finished"}
        assert conn.execute(text("SELECT SUM(risk_red) FROM stats_reported")).scalar() == conn.execute(
            text("SELECT SUM(total) FROM stats_reported")).scalar()
        # and the triggers are back
        conn.execute(text("UPDATE cases SET risk_level = 'blue'"))
        assert conn.execute(text("SELECT SUM(risk_red) FROM (SELECT risk_red FROM stats_reported UNION ALL "
                                 "SELECT risk_red FROM stats_reported_delta) AS b")).scalar() == 0
    result = runner.invoke(args=["stats", "fold"])
    assert result.exit_code == 0 and "folded" in result.output


def test_install_drops_stale_triggers(app):
    """A trigger of an older roll-up (named stats_…) would count twice: install drops it."""
    from app.extensions import db
    from app.stats import rollup

    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION stats_old_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
                              "BEGIN RETURN NULL; END $$"))
            conn.execute(text("CREATE TRIGGER stats_old_insert AFTER INSERT ON cases FOR EACH ROW "
                              "EXECUTE FUNCTION stats_old_insert()"))
            names = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            conn.execute(text("CREATE TRIGGER stats_old_insert AFTER INSERT ON cases BEGIN SELECT 1; END"))
            names = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        rollup.install(conn)
        installed = {name for (name,) in conn.execute(text(names))}
        assert "stats_old_insert" not in installed
        assert {name for name, _ in rollup.trigger_names()} <= installed


def test_a_fold_that_cannot_get_the_database_leaves_the_figures_whole(app, client, auth, monkeypatch, caplog):
    """Folding is housekeeping: when it cannot run (a busy database), the figures still answer, from the
    sums and the deltas, the same as after a fold, and the deltas wait for the next request."""
    from sqlalchemy.exc import OperationalError

    from app.extensions import db
    from app.stats import rollup, services

    _mix(app, random.Random(5), 40)
    with app.app_context(), db.engine.connect() as conn:
        pending = conn.execute(text("SELECT COUNT(*) FROM stats_reported_delta")).scalar()
    assert pending > 0
    monkeypatch.setattr(services, "FOLD_AFTER", 1)
    real_fold = rollup.fold

    def busy(connection):
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(rollup, "fold", busy)
    url = "/api/v1/stats?region=" + TOWN_A + "&from=2025-01-01&to=2027-12-31"
    response = client.get(url, headers=auth.headers("reviewer"))
    assert response.status_code == 200, response.get_json()
    assert "roll-up fold skipped" in caplog.text
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM stats_reported_delta")).scalar() == pending
    monkeypatch.setattr(rollup, "fold", real_fold)
    after = client.get(url, headers=auth.headers("reviewer"))
    assert after.status_code == 200
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM stats_reported_delta")).scalar() == 0  # folded now
    def figures(body: dict) -> dict:
        return {k: v for k, v in body.items() if k != "generated_at"}

    assert figures(after.get_json()) == figures(response.get_json())
