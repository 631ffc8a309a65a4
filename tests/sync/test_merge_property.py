"""Property: any interleaving of stale edits from several devices and reviewers ends exactly where a
sequential replay of the merge rule (DESIGN.md) ends, and every diverging edit is either applied or kept
as a conflict record."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.cases import actions, merge, reports
from app.cases.models import Case, CaseEvent, Conflict
from app.extensions import db
from app.users.models import User

EDITORS = ["wanggeyuan", "reviewer", "village_reviewer", "admin"]
VALUES = {
    "risk_level": st.sampled_from(["red", "yellow", "blue"]),
    "description": st.sampled_from(["楼道堆物", "井盖缺失", "电线裸露", "已清理一半"]),
    "category": st.sampled_from(["fire_hazard", "public_order", "sanitation"]),
}
edit = st.tuples(
    st.sampled_from(EDITORS),
    st.floats(min_value=0, max_value=1),  # how stale: a fraction of the versions seen so far
    st.fixed_dictionaries({}, optional=VALUES).filter(bool),
)


def _new_case(now_user: User) -> Case:
    actor = actions.Actor(user=now_user, device_id="prop-device-0001", op_id=str(uuid.uuid4()))
    report = {"id": str(uuid.uuid4()), "category": "fire_hazard", "risk_level": "yellow", "description": "初始",
              "micro_grid_id": "3303810010010101", "location": None, "photos": []}
    case, _ = reports.create_case(actor, report)
    return case


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(edit, min_size=1, max_size=12))
def test_interleavings_match_a_sequential_replay(app_ctx, edits):
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(EDITORS)))}
    case = _new_case(users["wanggeyuan"])
    # the reference: current values and a log of per-field diffs by version
    model = {"risk_level": "yellow", "description": "初始", "category": "fire_hazard"}
    log: list[dict] = [{}]  # version 1 (create): no field diffs needed for the fields we edit after it
    version = 1
    expected_conflicts = 0
    for username, staleness, changes in edits:
        base = 1 + int(staleness * (version - 1))
        op_id = str(uuid.uuid4())
        outcome = merge.update_case(actions.Actor(user=users[username], device_id=f"dev-{username}-0001",
                                                op_id=op_id), case, base, changes)
        # the rule, replayed by hand
        base_values = dict(model)
        for diff in reversed(log[base:]):  # undo every diff after the base version
            for field, (old, _new) in diff.items():
                base_values[field] = old
        applied, conflicts = {}, []
        for field, value in changes.items():
            if model[field] == value:
                continue
            if model[field] == base_values[field]:
                applied[field] = [model[field], value]
            else:
                conflicts.append(field)
        for field, (_old, new) in applied.items():
            model[field] = new
        if applied or conflicts:
            version += 1
            log.append(applied)
        expected_conflicts += len(conflicts)
        assert outcome.status == ("conflict" if conflicts else "applied")
        assert sorted(c["field"] for c in outcome.conflicts) == sorted(conflicts)
        assert case.version == version
    db.session.flush()
    assert {f: case.field_value(f) for f in model} == model
    stored = db.session.scalar(select(db.func.count()).select_from(Conflict).where(Conflict.case_id == case.id))
    assert stored == expected_conflicts
    versions = list(db.session.scalars(select(CaseEvent.version).where(CaseEvent.case_id == case.id)
                                       .order_by(CaseEvent.version)))
    assert versions == list(range(1, version + 1))
    db.session.rollback()
