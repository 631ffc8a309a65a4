"""``flask demo seed``: a month of cases in every state, made through the real entry points, once."""

from __future__ import annotations

from datetime import timedelta

from factories import TOWN_A
from sqlalchemy import func, select

from app.cases import deadlines, workflow
from app.cases.models import Case, CaseEvent, CasePhoto, Conflict, PointsEntry
from app.database import utcnow
from app.demo.cases import STORY, _id
from app.extensions import db
from app.media.models import Photo, PhotoHolder
from app.regions.models import Region
from app.stats import services as stats
from app.sync.models import OpLog


def _seed(runner, *args):
    result = runner.invoke(args=["demo", "seed", *args])
    assert result.exit_code == 0, result.output
    return result


def _counts() -> dict:
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Case, CaseEvent, CasePhoto, Conflict, Photo, PhotoHolder, OpLog, PointsEntry)}


def test_the_demo_holds_cases_in_every_state_with_lights_conflicts_and_duplicates(app_ctx, runner):
    _seed(runner)
    states = dict(db.session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    every_state = {"reported"} | {t.next for t in workflow.TABLE.values() if t.next}
    assert every_state <= {s for s, n in states.items() if n > 0}, states
    now = utcnow()
    open_cases = db.session.scalars(select(Case).where(Case.state.in_(
        ["reported", "accepted", "assigned", "in_progress", "resolved", "returned"]))).all()
    lights = [deadlines.light(case, now) for case in open_cases]
    assert "red" in lights and "yellow" in lights, lights
    assert deadlines.light(db.session.get(Case, _id("case", STORY.index("yellow_light"))), now) == "yellow"
    assert deadlines.light(db.session.get(Case, _id("case", STORY.index("overdue"))), now) == "red"
    assert db.session.scalar(select(func.count()).select_from(Conflict).where(Conflict.status == "open")) >= 1
    merged = db.session.scalars(select(Case).where(Case.state == "merged")).all()
    assert merged and all(db.session.get(Case, c.merged_into).state != "merged" for c in merged)


def test_the_demo_cases_are_spread_over_four_weeks_and_people(app_ctx, runner):
    _seed(runner)
    now = utcnow()
    first, last = db.session.execute(select(func.min(Case.reported_at), func.max(Case.reported_at))).one()
    assert now - timedelta(days=29) < first < now - timedelta(days=14)
    assert last <= now
    assert db.session.scalar(select(func.max(CaseEvent.at))) <= now
    assert db.session.scalar(select(func.count(func.distinct(Case.reporter_id)))) >= 4
    assert db.session.scalar(select(func.count(func.distinct(Case.assignee_id)))) >= 3
    assert db.session.scalar(select(func.count(func.distinct(Case.micro_grid_code)))) >= 8
    # each case's events follow one another in time
    for case in db.session.scalars(select(Case)):
        times = db.session.scalars(select(CaseEvent.at).where(CaseEvent.case_id == case.id)
                                   .order_by(CaseEvent.version)).all()
        assert times == sorted(times), case.id
        assert any("\u4e00" <= ch <= "\u9fff" for ch in case.description)


def test_every_demo_photo_is_held_by_who_linked_it_and_after_photos_exist(app_ctx, runner):
    _seed(runner)
    links = db.session.execute(select(CasePhoto, Case.reporter_id).join(Case, Case.id == CasePhoto.case_id)).all()
    assert {link.role for link, _ in links} == {"evidence", "rectification"}
    for link, reporter_id in links:
        assert link.attached
        holders = set(db.session.scalars(select(PhotoHolder.user_id).where(PhotoHolder.sha256 == link.sha256)))
        assert link.added_by in holders
        if link.role == "evidence":
            assert reporter_id in holders


def test_the_figures_of_the_demo_are_not_empty_and_agree_with_the_cases(app_ctx, runner, client, auth):
    _seed(runner)
    body = client.get(f"/api/v1/stats?region={TOWN_A}", headers=auth.headers("reviewer")).get_json()
    assert body["overdue"] > 0 and body["close_out_rate"] > 0, body
    assert sum(body["by_state"].values() if isinstance(body["by_state"], dict)
               else [row["count"] for row in body["by_state"]]) >= len(STORY)
    conflicts = client.get("/api/v1/conflicts", headers=auth.headers("reviewer")).get_json()
    assert conflicts, conflicts
    root, now = db.session.get(Region, TOWN_A), utcnow()
    start = now - timedelta(days=30)
    assert stats.compute(root, start, now, now) == stats.compute(root, start, now, now, use_rollup=False)


def test_seeding_the_demo_twice_adds_nothing(app_ctx, runner):
    first = _seed(runner)
    before = _counts()
    assert before["Case"] == len(STORY) + STORY.count("merged")
    second = _seed(runner)
    assert _counts() == before
    assert second.stdout == first.stdout


def test_no_cases_leaves_the_demo_city_without_cases(app_ctx, runner):
    _seed(runner, "--no-cases")
    assert _counts()["Case"] == 0
