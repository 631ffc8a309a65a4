"""A few weeks of believable cases for the demo city, so the review queue, the figures and the map are not
empty at first look.

Every case is made the way the real ones are: reports, updates and field transitions are ops pushed through
the sync service as phones push them, reviewer transitions go through the function the transitions route
calls, photos are stored through the media service by the user who then names them. Only the clock is
moved: each step runs at its own moment of the last four weeks (``_clock_at``), so the events, deadlines
(the real calendar and office hours), points and the figures' roll-up carry the times a real month would
have given them. A fixed random seed makes the story the same on every run; its dates are relative to now.
Idempotent: the case ids are fixed, and a case that exists already is left as it is.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from PIL import Image, ImageDraw
from shapely.geometry import shape
from sqlalchemy import func, select

from app import database
from app.cases import actions, transitions, unit_of_work
from app.cases.models import Case
from app.extensions import db
from app.media import services as media
from app.sync import services as sync
from app.users.models import User
from app.users.services import create_user

SEED = 20261202
NAMESPACE = uuid.UUID("6f1d2c1e-3b7a-4d0e-9a51-5d1f0c3a2b77")
CHINA = timezone(timedelta(hours=8))

# The demo's field people besides the four demo users (app/demo/services.py): one grid worker per grid
# that has cases, and a second volunteer. Username → (role, grid, display name, password).
FIELD_PEOPLE = {
    "wanggeyuan": ("grid_worker", "33038100100101", None, None),
    "zhiyuanzhe": ("volunteer", "33038100100101", None, None),
    "chenwangge": ("grid_worker", "33038100100201", "陈网格员", "Gridcase-grid-2026"),
    "wangwangge": ("grid_worker", "33038100100302", "王网格员", "Gridcase-grid-2026"),
    "liuwangge": ("grid_worker", "33038100100403", "刘网格员", "Gridcase-grid-2026"),
    "zhaohongxiu": ("volunteer", "33038100100201", "赵红袖章", "Gridcase-volunteer-2026"),
}
GRID_WORKER = {grid: name for name, (role, grid, _, _) in FIELD_PEOPLE.items() if role == "grid_worker"}
REVIEWER = "reviewer"

# What grid work finds, in the words of the reports (消防通道, 飞线充电, 一日双巡…): category → descriptions.
DESCRIPTIONS = {
    "fire_hazard": ["楼道堆放纸箱杂物，堵塞消防通道", "沿街店铺消防通道被货物占用", "居民楼灭火器过期未更换",
                    "出租房内私拉乱接电线，存在火灾隐患"],
    "ebike_charging": ["电动自行车在楼道内违规充电", "居民从窗口飞线给电动车充电", "地下车库电动车集中充电无人看管"],
    "gas_safety": ["餐馆液化气钢瓶与灶具距离过近", "老旧小区燃气管道锈蚀，有异味", "小吃店使用未检验的燃气瓶"],
    "public_order": ["夜间有人在小区门口聚集滋事", "小区监控探头损坏，存在治安盲区", "出租屋流动人口未登记"],
    "road_safety": ["学校门口路段斑马线褪色", "路口红绿灯故障，车辆通行混乱", "三轮车占道经营影响通行"],
    "sanitation": ["河道沿岸垃圾堆积未清理", "背街小巷生活垃圾溢出", "建筑垃圾乱倒在绿化带内"],
    "illegal_building": ["居民在楼顶违章搭建彩钢棚", "沿街店铺擅自搭建雨棚占用人行道"],
    "flood_typhoon": ["台风过后行道树倒伏压住电线", "低洼地段排水口堵塞，雨后积水", "山塘堤坝出现渗水"],
    "dispute": ["邻里因楼道堆物发生矛盾纠纷", "租户与房东因押金起争执，需调解", "工地拖欠工人工资引发纠纷"],
    "work_safety": ["小作坊安全出口被堵，员工宿舍与车间混用", "工地脚手架未设防护网"],
}
RISKS = ["red", "yellow", "yellow", "blue", "blue"]
REASONS = {"return": "照片不清楚，请补充现场照片和具体位置", "reject": "经核实不属于网格事项，已告知当事人"}
AFTER_NOTES = ["已督促整改，杂物清理完毕", "已联系物业处理，现场恢复正常", "已调解，双方达成一致",
               "已通知相关部门，隐患已消除"]

# How each case ends, in the order they are made (the paths below say how it gets there).
STORY = (["reported"] * 7 + ["returned"] * 2 + ["rejected"] * 2 + ["accepted"] * 4 + ["assigned"] * 4
         + ["in_progress"] * 3 + ["resolved"] * 4 + ["closed"] * 10 + ["on_spot"] * 3
         + ["conflict", "merged", "yellow_light", "overdue"])
PATHS = {
    "reported": [], "returned": ["return"], "rejected": ["reject"], "accepted": ["accept"],
    "assigned": ["accept", "assign"], "in_progress": ["accept", "assign", "start"],
    "resolved": ["accept", "assign", "start", "resolve"],
    "closed": ["accept", "assign", "start", "resolve", "verify_close"],
    "on_spot": ["verify_close"], "conflict": ["update_by_reviewer", "stale_update"], "merged": ["merge"],
    "yellow_light": [], "overdue": [],
}
# How old a case of each ending is: what is still open is mostly recent (a queue of only red lights
# would not be believable), what is finished spreads over the four weeks.
AGE_DAYS = {"overdue": (1.2, 1.3), "reported": (0, 4), "accepted": (0.2, 5), "assigned": (0.5, 8), "in_progress": (1, 10),
            "resolved": (1, 12)}
CONFLICTING_UPDATES = {"update_by_reviewer": "red", "stale_update": "blue"}


@dataclass(order=True)
class Step:
    at: datetime
    order: int
    story: int = field(compare=False)
    case_id: str = field(compare=False)
    action: str = field(compare=False)
    who: str = field(compare=False)
    params: dict = field(compare=False, default_factory=dict)


@contextmanager
def _clock_at(moment: datetime):
    """Within this block the app's clock (``app.database.utcnow``, which every "now" of the domain reads)
    says ``moment``. Only for seeding: nothing else runs in this process meanwhile."""
    real = database.datetime

    class Travelled(real):
        @classmethod
        def now(cls, tz=None):
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    database.datetime = Travelled
    try:
        yield
    finally:
        database.datetime = real


def _id(kind: str, n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}-{n}"))


def _people() -> dict[str, User]:
    people = {}
    for username, (role, grid, name, password) in {**FIELD_PEOPLE, REVIEWER: ("reviewer", None, None, None)}.items():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            user = create_user(username, role, grid, password, name)
        people[username] = user
    db.session.commit()
    return people


def _centres(features: list[dict]) -> dict[str, tuple[float, float]]:
    """(lat, lon) of a point well inside each micro-grid of the grids that have cases."""
    points = {}
    for f in features:
        code = f["properties"]["code"]
        if f["properties"]["level"] == "micro_grid" and code[:14] in GRID_WORKER:
            p = shape(f["geometry"]).representative_point()
            points[code] = (round(p.y, 6), round(p.x, 6))
    return points


def _photo(rng: random.Random, user: User, after: bool) -> str:
    """A small JPEG of its own (a scene of blocks, greener after the fix), stored as ``user``'s upload."""
    image = Image.new("RGB", (320, 240), (rng.randrange(90, 160),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(0, 290), rng.randrange(0, 210)
        colour = (rng.randrange(40, 120), rng.randrange(150, 230), rng.randrange(60, 140)) if after else \
            (rng.randrange(120, 240), rng.randrange(40, 140), rng.randrange(20, 90))
        draw.rectangle([x, y, x + rng.randrange(15, 110), y + rng.randrange(15, 80)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    fd, path = tempfile.mkstemp(suffix=".jpg", dir=media.tmp_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(buffer.getvalue())
        return media.store_upload(path, None, user).sha256
    finally:
        os.remove(path)


def _op(step: Step, kind: str, **body) -> dict:
    """An op as the PWA's outbox holds it (tests/sync/helpers.py builds them the same way)."""
    return {"op_id": _id("op", step.order), "seq": step.order, "type": kind, **body}


def _push(user: User, op: dict, at: datetime) -> dict:
    """Send one op as ``user``'s phone does (``POST /api/v1/sync``); returns its result."""
    device = f"demo-phone-{user.username}"
    envelope = {"device_id": device, "client_time": at.isoformat(), "ops": [op]}
    result = sync.sync(user, device, json.dumps(envelope, ensure_ascii=False).encode())["results"][0]
    if result["status"] not in ("applied", "conflict"):
        raise RuntimeError(f"demo op {op['type']} was {result['status']}: {result}")
    return result


def _review(user: User, case_id: str, action: str, params: dict) -> None:
    """A reviewer's transition, as ``POST /api/v1/cases/<id>/transitions`` makes it."""
    case, redirected = actions.follow_merges(actions.get_case(case_id, lock=True), lock=True)
    transitions.transition(actions.Actor(user=user), case, action, case.version, params, redirected=redirected)
    unit_of_work.finish()
    db.session.commit()


class Story:
    """The steps of every case, then played in time order."""

    def __init__(self, now: datetime, people: dict[str, User], centres: dict[str, tuple[float, float]]):
        self.rng = random.Random(SEED)
        self.now, self.people, self.centres = now, people, centres
        self.steps: list[Step] = []
        self.case_ids: set[str] = set()
        self.n = 0

    def _daytime(self, days_ago: float) -> datetime:
        day = (self.now - timedelta(days=days_ago)).astimezone(CHINA)
        start = day.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(minutes=self.rng.randrange(0, 600))
        return min(start.astimezone(timezone.utc), self.now - timedelta(minutes=self.rng.randrange(20, 90)))

    def add(self, n: int, ending: str) -> None:
        rng, self.n = self.rng, n
        # a matter handled on the spot is a grid worker's (小事不出网格)
        reporters = list(GRID_WORKER.values()) if ending == "on_spot" else list(FIELD_PEOPLE)
        reporter = reporters[n % len(reporters)]
        grid = FIELD_PEOPLE[reporter][1]
        micro = f"{grid}{rng.randrange(1, 5):02d}"
        category = rng.choice([c for c in DESCRIPTIONS if FIELD_PEOPLE[reporter][0] == "grid_worker"
                               or c not in ("dispute", "work_safety")])
        risk = {"conflict": "yellow",  # changed to red on the server, to blue on the phone
                "overdue": "red"}.get(ending) or rng.choice(RISKS)  # red counts natural time: late on any day
        case_id = _id("case", n)
        if ending == "yellow_light":  # red: 2 natural hours to accept; 100 minutes gone is 83 %
            at, risk = self.now - timedelta(minutes=100), "red"
        else:
            at = self._daytime(rng.uniform(*AGE_DAYS.get(ending, (2, 27))))
        report = {"category": category, "risk_level": risk, "description": rng.choice(DESCRIPTIONS[category]),
                  "micro_grid": micro, "evidence": rng.random() < 0.7, "on_spot": ending == "on_spot"}
        self._step(at, case_id, "report", reporter, report)
        actions = PATHS[ending]
        if ending == "merged":  # the same thing reported again, by the other person of the grid, nearby
            twin = _id("case", 1000 + n)
            other = next((u for u, (_, g, _, _) in FIELD_PEOPLE.items() if g == grid and u != reporter), reporter)
            self._step(at + timedelta(hours=rng.uniform(1, 5)), twin, "report", other,
                       {**report, "description": report["description"] + "（重复上报）", "evidence": False})
            case_id, report["target"] = twin, case_id
        span = max(timedelta(0), self.now - timedelta(hours=1) - at)
        for action in actions:
            at = at + min(timedelta(hours=rng.uniform(1, 30)), span / (len(actions) + 1))
            who = GRID_WORKER[grid] if action in ("start", "resolve", "stale_update") else REVIEWER
            self._step(at, case_id, action, who, {"grid": grid, "target": report.get("target")})

    def _step(self, at, case_id, action, who, params):
        self.steps.append(Step(at, len(self.steps), self.n, case_id, action, who, params))
        self.case_ids.add(case_id)

    def play(self) -> None:
        for step in sorted(self.steps):
            with _clock_at(step.at):
                self._do(step)

    def _do(self, step: Step) -> None:
        user, p, at, case_id = self.people[step.who], step.params, step.at, step.case_id
        if step.action == "report":
            photos = [_photo(self.rng, user, after=p["on_spot"])] if p["evidence"] or p["on_spot"] else []
            lat, lon = self.centres[p["micro_grid"]]
            report = {"id": case_id, "category": p["category"], "risk_level": p["risk_level"],
                      "description": p["description"], "micro_grid_id": p["micro_grid"],
                      "location": {"lat": lat + self.rng.uniform(-2e-4, 2e-4),
                                   "lon": lon + self.rng.uniform(-2e-4, 2e-4),
                                   "accuracy_m": self.rng.choice([5, 8, 12]), "crs": "wgs84"},
                      "captured_at": at.astimezone(CHINA).isoformat(), "photos": photos}
            if p["on_spot"]:
                report["handled_on_spot"] = True
            _push(user, _op(step, "report.create", report=report), at)
            return
        version = db.session.get(Case, case_id).version
        if step.action in ("start", "resolve"):
            op = _op(step, "case.transition", case_id=case_id, base_version=version, action=step.action)
            if step.action == "resolve":
                op["note"] = {"id": _id("note", step.order), "text": self.rng.choice(AFTER_NOTES),
                              "photos": [_photo(self.rng, user, after=True)],
                              "captured_at": at.astimezone(CHINA).isoformat()}
            _push(user, op, at)
        elif step.action in CONFLICTING_UPDATES:
            # both from the report's version: the grid worker's phone was offline while the reviewer changed it
            _push(user, _op(step, "case.update", case_id=case_id, base_version=1,
                            changes={"risk_level": CONFLICTING_UPDATES[step.action]}), at)
        else:
            params = {"reason": REASONS.get(step.action)}
            if step.action == "assign":
                params["assignee"] = GRID_WORKER[p["grid"]]
            if step.action == "merge":
                params["target"] = p["target"]
            _review(user, case_id, step.action, {k: v for k, v in params.items() if v})


def seed_cases(features: list[dict]) -> int:
    """Create the demo's cases that do not exist yet (a few weeks of them, in every state); returns how
    many demo cases there are."""
    people = _people()
    story = Story(database.utcnow(), people, _centres(features))
    for n, ending in enumerate(STORY):
        story.add(n, ending)
    have = set(db.session.scalars(select(Case.id).where(Case.id.in_(story.case_ids))))
    db.session.commit()
    # a case already there is left alone, and so is the rest of its story (a merge, its twin)
    done = {s.story for s in story.steps if s.case_id in have}
    story.steps = [s for s in story.steps if s.story not in done]
    story.play()
    return db.session.scalar(select(func.count()).select_from(Case).where(Case.id.in_(story.case_ids)))
