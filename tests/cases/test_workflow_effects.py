"""What each workflow action does is data (app/cases/workflow.py's EFFECTS): every effect it names is
carried out once the app is built, the stages it ends are the clock's, and the traffic light is one rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.cases import deadlines, hooks, transitions, workflow


def test_every_effect_named_in_the_workflow_is_carried_out(app):
    assert transitions.unknown_effects() == set()
    # the points come from the stats feature, wired by the app factory and not by an import
    assert hooks.effect_hooks["awards_points"] and hooks.effect_hooks["takes_back_points"]


def test_every_action_has_its_effects_and_no_effect_names_an_unknown_action():
    assert set(workflow.EFFECTS) == set(workflow.ACTIONS)
    assert workflow.stages_ended_by("reject") == ("accept", "close")
    assert workflow.stages_ended_by("accept") == ("accept",)
    assert workflow.stages_ended_by("start") == ()


def test_the_traffic_light_is_one_rule_for_running_and_stopped_clocks():
    now = datetime(2026, 3, 2, 8, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert deadlines.light_at(now, now + hour, now + hour / 2, None) == "green"
    assert deadlines.light_at(now, now + hour, now, None) == "yellow"
    assert deadlines.light_at(now, now, now - hour, None) == "red"
    # a stopped clock keeps the colour of the share of its limit it had used
    assert deadlines.light_at(now, None, None, 0.5) == "green"
    assert deadlines.light_at(now, None, None, deadlines.WARN_FRACTION) == "yellow"
    assert deadlines.light_at(now, None, None, 1.0) == "red"
    assert deadlines.light_at(now, None, None, None) is None
