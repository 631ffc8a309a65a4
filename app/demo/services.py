"""A believable county-level city for demos and tests: 瑞安市 around 27.8° N 120.65° E.

Four streets (街道), each with four communities (社区), each with four grids of four micro-grids. The
boundaries come from one jittered lattice, so neighbours share their edges exactly and every region is
the union of its micro-grids, as in real boundary data.
"""

from __future__ import annotations

import random

from shapely.geometry import Polygon, mapping
from shapely.ops import unary_union
from sqlalchemy import select

from app.extensions import db
from app.regions.services import import_regions
from app.users.models import User
from app.users.services import create_user

CITY = ("330381", "瑞安市")
TOWNSHIPS = ["安阳街道", "玉海街道", "锦湖街道", "东山街道"]
VILLAGES = [
    ["万松社区", "虹桥社区", "新湖社区", "隆山社区"],
    ["解放社区", "西山社区", "沙洲社区", "忠义社区"],
    ["锦湖社区", "罗南社区", "汀田社区", "塘下社区"],
    ["东山社区", "上望社区", "莘塍社区", "飞云社区"],
]
# The city's extent; each level splits its parent 2 × 2, down to 16 × 16 micro-grids.
WEST, EAST, SOUTH, NORTH = 120.58, 120.72, 27.74, 27.86
SIDE = 16

DEMO_PASSWORDS = {
    "admin": ("admin", "330381", "city", "市社会治理中心管理员", "Gridcase-admin-2026"),
    "reviewer": ("reviewer", "330381001", "township", "安阳街道审核员", "Gridcase-review-2026"),
    "grid_worker": ("wanggeyuan", "33038100100101", "grid", "张网格员", "Gridcase-grid-2026"),
    "volunteer": ("zhiyuanzhe", "33038100100101", "grid", "李志愿者", "Gridcase-volunteer-2026"),
}


def _lattice(seed: int = 20261122) -> list[list[tuple[float, float]]]:
    rng = random.Random(seed)
    dx, dy = (EAST - WEST) / SIDE, (NORTH - SOUTH) / SIDE
    points = []
    for j in range(SIDE + 1):
        row = []
        for i in range(SIDE + 1):
            x, y = WEST + i * dx, SOUTH + j * dy
            if 0 < i < SIDE and 0 < j < SIDE:
                # Interior vertices wander a little: streets and rivers are never straight.
                x += rng.uniform(-0.25, 0.25) * dx
                y += rng.uniform(-0.25, 0.25) * dy
            row.append((round(x, 6), round(y, 6)))
        points.append(row)
    return points


def _cell(points, i: int, j: int) -> Polygon:
    return Polygon([points[j][i], points[j][i + 1], points[j + 1][i + 1], points[j + 1][i], points[j][i]])


def demo_feature_collection() -> dict:
    """The demo city's regions as a GeoJSON FeatureCollection (the input of ``regions import``)."""
    points = _lattice()
    features = []

    def add(code, name, level, parent, geom):
        features.append({"type": "Feature", "geometry": mapping(geom),
                         "properties": {"code": code, "name": name, "level": level, "parent": parent}})

    cells = {(i, j): _cell(points, i, j) for i in range(SIDE) for j in range(SIDE)}

    def block(i0, j0, size):
        return unary_union([cells[(i, j)] for i in range(i0, i0 + size) for j in range(j0, j0 + size)])

    city_code, city_name = CITY
    add(city_code, city_name, "city", None, block(0, 0, SIDE))
    for t in range(4):
        ti, tj = (t % 2) * 8, (t // 2) * 8
        t_code = f"{city_code}{t + 1:03d}"
        add(t_code, TOWNSHIPS[t], "township", city_code, block(ti, tj, 8))
        for v in range(4):
            vi, vj = ti + (v % 2) * 4, tj + (v // 2) * 4
            v_code = f"{t_code}{v + 1:03d}"
            v_name = VILLAGES[t][v]
            add(v_code, v_name, "village", t_code, block(vi, vj, 4))
            for g in range(4):
                gi, gj = vi + (g % 2) * 2, vj + (g // 2) * 2
                g_code = f"{v_code}{g + 1:02d}"
                g_name = f"{v_name}第{g + 1}网格"
                add(g_code, g_name, "grid", v_code, block(gi, gj, 2))
                for m in range(4):
                    mi, mj = gi + m % 2, gj + m // 2
                    add(f"{g_code}{m + 1:02d}", f"{g_name}{m + 1}号微网格", "micro_grid", g_code, cells[(mi, mj)])
    return {"type": "FeatureCollection", "features": features}


def seed_demo() -> dict:
    """Create (or update) the demo city and one user of each role. Idempotent; returns the credentials.
    The categories, time limits and calendar are not the demo's: every database has them from its first
    ``db upgrade`` (app/cases/defaults.py)."""
    import_regions(demo_feature_collection())
    credentials = {}
    for role, (username, region, _level, name, password) in DEMO_PASSWORDS.items():
        if db.session.scalar(select(User.id).where(User.username == username)) is None:
            create_user(username, role, region, password, name)
        credentials[role] = {"username": username, "password": password, "region": region}
    db.session.commit()
    return credentials
