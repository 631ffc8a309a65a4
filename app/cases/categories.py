"""The default categories of grid work (a deployment edits them; these follow the 平安建设 reports)."""

from __future__ import annotations

from app.cases.models import Category
from app.extensions import db

ALL = ["volunteer", "grid_worker", "reviewer", "admin"]
STAFF = ["grid_worker", "reviewer", "admin"]

DEFAULTS = [
    ("fire_hazard", "消防隐患", "Fire hazard", ALL),
    ("ebike_charging", "电动车违规充电", "E-bike charging indoors", ALL),
    ("gas_safety", "燃气安全", "Gas safety", ALL),
    ("public_order", "治安隐患", "Public order", ALL),
    ("road_safety", "道路交通安全", "Road safety", ALL),
    ("sanitation", "环境卫生", "Sanitation", ALL),
    ("illegal_building", "违章搭建", "Illegal construction", ALL),
    ("flood_typhoon", "防汛防台", "Flood and typhoon", ALL),
    ("dispute", "矛盾纠纷", "Neighbourhood dispute", STAFF),
    ("work_safety", "安全生产", "Workplace safety", STAFF),
    ("vulnerable_people", "重点人员关爱", "People needing care", STAFF),
    ("other", "其他", "Other", ALL),
]


def ensure_default_categories() -> int:
    """Create the default categories that are missing; returns how many were created."""
    created = 0
    for sort, (code, zh, en, roles) in enumerate(DEFAULTS):
        if db.session.get(Category, code) is None:
            db.session.add(Category(code=code, name_zh=zh, name_en=en, roles=roles, sort=sort, active=True))
            created += 1
    db.session.flush()
    return created
