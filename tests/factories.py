"""Test users beside the demo ones: a second township (安阳 is 001, 玉海 is 002) for scope tests."""

from __future__ import annotations

TEST_PASSWORD = "Test-password-2026"

# The demo city's townships, villages and grids (see app/demo/services.py).
CITY = "330381"
TOWN_A = "330381001"  # 安阳街道
TOWN_B = "330381002"  # 玉海街道
VILLAGE_A1 = "330381001001"  # 万松社区
GRID_A1 = "33038100100101"  # 万松社区第1网格
GRID_A2 = "33038100100102"
MICRO_A1_1 = "3303810010010101"
MICRO_A1_2 = "3303810010010102"
MICRO_A2_1 = "3303810010010201"
GRID_B1 = "33038100200101"
MICRO_B1_1 = "3303810020010101"

# username -> (role, region, password)
TEST_USERS: dict[str, tuple[str, str, str]] = {
    # the demo users
    "admin": ("admin", CITY, "Gridcase-admin-2026"),
    "reviewer": ("reviewer", TOWN_A, "Gridcase-review-2026"),
    "wanggeyuan": ("grid_worker", GRID_A1, "Gridcase-grid-2026"),
    "zhiyuanzhe": ("volunteer", GRID_A1, "Gridcase-volunteer-2026"),
    # more in township A
    "village_reviewer": ("reviewer", VILLAGE_A1, TEST_PASSWORD),
    "worker_a2": ("grid_worker", GRID_A2, TEST_PASSWORD),
    "volunteer_a2": ("volunteer", GRID_A1, TEST_PASSWORD),
    # township B: the outsiders
    "reviewer_b": ("reviewer", TOWN_B, TEST_PASSWORD),
    "worker_b": ("grid_worker", GRID_B1, TEST_PASSWORD),
    "volunteer_b": ("volunteer", GRID_B1, TEST_PASSWORD),
}

OUTSIDERS = ("reviewer_b", "worker_b", "volunteer_b")


def make_users() -> None:
    """Create the non-demo test users (inside an app context)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.users.models import User
    from app.users.services import create_user

    for username, (role, region, password) in TEST_USERS.items():
        if db.session.scalar(select(User.id).where(User.username == username)) is None:
            create_user(username, role, region, password)
