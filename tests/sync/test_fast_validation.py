"""Property: the hand-written fast path for well-formed ops (``fast_load``) gives exactly what the schema
gives, and declines (``None``) every op the schema would refuse, so errors always come from the schema."""

from __future__ import annotations

import copy
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.sync.schemas import OP_SCHEMAS, fast_load

SHA = "a" * 64
UUID = "123e4567-e89b-12d3-a456-426614174000"


def _report_op() -> dict:
    return {"op_id": str(uuid.uuid4()), "seq": 7, "type": "report.create", "report": {
        "id": str(uuid.uuid4()), "category": "fire_hazard", "risk_level": "red",
        "description": "楼道堆放纸箱和旧家具，堵塞消防通道", "micro_grid_id": "3303810010010101",
        "location": {"lat": 27.7437, "lon": 120.5843, "accuracy_m": 8, "crs": "wgs84"},
        "captured_at": "2026-11-22T08:03:11+08:00", "photos": [SHA, "b" * 64]}}


def _update_op() -> dict:
    return {"op_id": str(uuid.uuid4()), "seq": 8, "type": "case.update", "case_id": str(uuid.uuid4()),
            "base_version": 3, "changes": {"risk_level": "blue", "description": "已清理一半"}}


# Values a field might be given: right ones, wrong types, edge cases, the forms the fast path leaves alone.
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**40, max_value=2**40), st.sampled_from([2**31, -2**31 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 1, -90, 90, 90.0000001, 180, 100_000]),
    st.text(max_size=40), st.sampled_from([
        "", "x" * 32, "x" * 33, "red", "yellow", "purple", "wgs84", "gcj02", "bd09", "WGS84", UUID, UUID + "\n",
        UUID.upper(), SHA, SHA.upper(), "a\x01b", "3303810010010101", "2026-11-22T08:03:11", "2026-11-22",
        "0001-01-01T00:00:00+14:00", "2026-11-22T08:03:11Z", "x" * 2001, "report.create", "case.update"]),
    st.lists(st.sampled_from([SHA, "b" * 64, "nope", None]), max_size=22),
    st.just([{"sha256": SHA, "role": "rectification"}]), st.just({}), st.just({"lat": 1, "lon": 2}),
    st.just({"lat": 1, "lon": 2, "crs": None}), st.just({"lat": "1", "lon": 2}), st.just([]),
)
REPORT_PATHS = [("op_id",), ("seq",), ("type",), ("extra",), ("report",), ("report", "id"), ("report", "category"),
                ("report", "risk_level"), ("report", "description"), ("report", "micro_grid_id"),
                ("report", "location"), ("report", "location", "lat"), ("report", "location", "lon"),
                ("report", "location", "accuracy_m"), ("report", "location", "crs"),
                ("report", "location", "extra"), ("report", "captured_at"), ("report", "photos"),
                ("report", "handled_on_spot"), ("report", "extra")]
UPDATE_PATHS = [("op_id",), ("seq",), ("case_id",), ("base_version",), ("changes",), ("changes", "risk_level"),
                ("changes", "description"), ("changes", "category"), ("changes", "micro_grid_id"),
                ("changes", "location"), ("changes", "state"), ("extra",)]


def _mutate(op: dict, edits) -> dict:
    op = copy.deepcopy(op)
    for path, drop, value in edits:
        target = op
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if drop:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = copy.deepcopy(value)
    return op


def _check(op: dict) -> None:
    fast = fast_load(op["type"] if isinstance(op.get("type"), str) else "", op)
    try:
        slow = OP_SCHEMAS[op["type"]].load(copy.deepcopy(op))
    except (ValidationError, KeyError, TypeError):
        slow = None
    if fast is not None:
        assert slow == fast, (op, slow, fast)


def test_well_formed_ops_take_the_fast_path():
    for op in (_report_op(), _update_op()):
        fast = fast_load(op["type"], op)
        assert fast is not None
        assert fast == OP_SCHEMAS[op["type"]].load(op)


@settings(max_examples=400, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(REPORT_PATHS), st.booleans(), ODD), max_size=3))
def test_reports_fast_path_agrees_with_the_schema(edits):
    _check(_mutate(_report_op(), edits))


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(UPDATE_PATHS), st.booleans(), ODD), max_size=3))
def test_updates_fast_path_agrees_with_the_schema(edits):
    _check(_mutate(_update_op(), edits))
