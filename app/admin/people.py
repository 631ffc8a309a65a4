"""People in the admin console: list and search, create, disable, enable, move, reset, and import a roster
(花名册). Admins manage everyone; reviewers the grid workers and volunteers of their own township. Every
change records an audit event in the same transaction. New accounts get a one-time activation code instead
of a password (see app/auth/activation.py)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, or_, select

from app.admin import audit
from app.auth import activation
from app.auth.scope import region_criterion, region_visible, require_user_visible
from app.auth.services import revoke_user_sessions
from app.database import utcnow
from app.devices.models import Device
from app.errors import Conflict, DomainError, Forbidden, ValidationFailed
from app.extensions import db
from app.regions.models import LEVELS, Region
from app.users.models import ROLES, User

# The roles a reviewer may manage (in their own township).
FIELD_ROLES = ("grid_worker", "volunteer")
ROLE_LABELS_ZH = {"volunteer": "志愿者", "grid_worker": "网格员", "reviewer": "审核员", "admin": "管理员"}
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Row problems of a roster: code -> (zh, en).
ROW_REASONS = {
    "bad_username": ("用户名须为 1-64 个字母、数字或 . _ -", "the username must be 1-64 letters, digits or . _ -"),
    "unknown_region": ("找不到该区域", "no such region"),
    "duplicate_in_file": ("用户名在文件中重复", "the username appears more than once in the file"),
    "already_exists": ("该用户名已存在", "an account with this username exists already"),
    "bad_role": ("角色无效（网格员、志愿者、审核员、管理员）", "not a role (grid_worker, volunteer, reviewer, admin)"),
    "not_yours": ("您不能管理该角色的人员", "you may not manage people of this role"),
    "bad_phone": ("手机号格式不正确", "not a phone number"),
}
# Header names accepted in a roster, English or Chinese.
COLUMNS = {
    "username": ("username", "用户名", "账号"),
    "display_name": ("display_name", "display name", "姓名", "显示名"),
    "phone": ("phone", "手机", "手机号", "电话"),
    "role": ("role", "角色"),
    "region": ("region", "区域", "所属区域", "网格"),
}
ROLE_WORDS = {**{role: role for role in ROLES}, **{zh: role for role, zh in ROLE_LABELS_ZH.items()},
              "红袖章": "volunteer", "网格长": "grid_worker"}


class RosterError(DomainError):
    status = 422


# ---------------------------------------------------------------------------------------------- places


def name_paths(codes) -> dict[str, str]:
    """``{code: "安阳街道/万松社区/万松社区第1网格"}``: names from the township down (the city is implied)."""
    regions = db.session.scalars(select(Region).where(Region.code.in_(set(codes)))).all()
    ancestors = {getattr(r, f"{level}_code") for r in regions for level in LEVELS[1:]} - {None}
    names = dict(db.session.execute(select(Region.code, Region.name).where(Region.code.in_(ancestors))).all())
    names.update({r.code: r.name for r in regions})
    paths = {}
    for r in regions:
        chain = [getattr(r, f"{level}_code") for level in LEVELS[1:]]
        paths[r.code] = "/".join(names.get(code, code) for code in chain if code) or r.name
    return paths


class RegionFinder:
    """Finds a region by code or by name path, with or without the city ("安阳街道/万松社区/…")."""

    def __init__(self):
        regions = db.session.scalars(select(Region)).all()
        self.by_code = {r.code: r for r in regions}
        self.by_path = {}
        for r in regions:
            chain = [self.by_code.get(getattr(r, f"{level}_code")) for level in LEVELS]
            names = [c.name for c in chain if c is not None]
            self.by_path["/".join(names)] = r
            self.by_path.setdefault("/".join(names[1:]), r)

    def find(self, text: str) -> Region | None:
        text = re.sub(r"\s*/\s*", "/", text.strip().strip("/"))
        return self.by_code.get(text) or self.by_path.get(text)


# ---------------------------------------------------------------------------------------------- rules


def can_manage(actor: User, role: str, region: Region | None) -> bool:
    """Admins: anyone anywhere; reviewers: grid workers and volunteers inside their own subtree."""
    if actor.role == "admin":
        return True
    return actor.role == "reviewer" and role in FIELD_ROLES and region_visible(region, actor)


def _require_manageable(actor: User, target: User) -> User:
    require_user_visible(target, actor)
    if target.id == actor.id or not can_manage(actor, target.role, target.region):
        raise Forbidden("person_not_manageable")
    return target


def get_person(actor: User, user_id: int) -> User:
    # an id no integer column can hold is no one (not a database error)
    found = db.session.get(User, user_id) if 0 < user_id < 2**31 else None
    return _require_manageable(actor, found)


def _resolve_region(actor: User, text: str) -> Region:
    region = RegionFinder().find(text) if "/" in text else db.session.get(Region, text)
    if region is None or not region_visible(region, actor):
        raise ValidationFailed(errors={"region": [ROW_REASONS["unknown_region"][1]]})
    return region


# ---------------------------------------------------------------------------------------------- listing


def list_people(actor: User, *, q: str | None = None, role: str | None = None, region: str | None = None,
                limit: int = 200) -> list[dict]:
    """People in scope with their region's name path, last contact and unsent work over all their phones."""
    phones = (select(Device.user_id, func.max(Device.last_seen).label("last_seen"),
                     func.sum(Device.outbox_pending).label("outbox_pending"))
              .group_by(Device.user_id).subquery())
    stmt = (select(User, phones.c.last_seen, phones.c.outbox_pending)
            .join(Region, User.region_code == Region.code).outerjoin(phones, phones.c.user_id == User.id)
            .where(region_criterion(Region, actor)))
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(User.username.ilike(like), User.display_name.ilike(like), User.phone.ilike(like)))
    if role:
        stmt = stmt.where(User.role == role)
    if region:
        root = db.session.get(Region, region)
        if root is None or not region_visible(root, actor):
            return []
        stmt = stmt.where(getattr(Region, f"{root.level}_code") == root.code)
    rows = db.session.execute(stmt.order_by(User.region_code, User.username).limit(limit)).unique().all()
    paths = name_paths(user.region_code for user, _, _ in rows)
    return [person_dict(user, paths, last_seen, pending) for user, last_seen, pending in rows]


def person_dict(user: User, paths: dict, last_seen=None, pending=None) -> dict:
    return {**user.to_dict(), "phone": user.phone, "role_label": ROLE_LABELS_ZH.get(user.role, user.role),
            "region_path": paths.get(user.region_code), "disabled": user.disabled_at is not None,
            "activated": not user.password_hash.startswith("!"), "last_seen": last_seen,
            "outbox_pending": int(pending or 0)}


def one_person(user: User) -> dict:
    pending, last_seen = db.session.execute(
        select(func.sum(Device.outbox_pending), func.max(Device.last_seen)).where(Device.user_id == user.id)).one()
    return person_dict(user, name_paths([user.region_code]), last_seen, pending)


# ---------------------------------------------------------------------------------------------- changes


def _event(actor: User, action: str, user: User, words: str, changes: dict | None = None) -> None:
    audit.record(actor, action, "user", user.id, region_code=user.region_code,
                 summary=f"{user.display_name or user.username} {words}", changes=changes)


def create_person(actor: User, data: dict) -> tuple[User, str]:
    """A new account waiting for activation, and its one-time code. Raises ValidationFailed, Conflict,
    Forbidden (``person_not_manageable``)."""
    row = RosterRow(1, data.get("username", ""), data.get("display_name", ""), data.get("phone") or "",
                    data.get("role", ""), data.get("region", ""))
    problems = Roster(actor, [row]).check()
    if problems:
        code = problems[0]["code"]
        if code == "not_yours":
            raise Forbidden("person_not_manageable")
        if code == "already_exists":
            raise Conflict("username_taken")
        raise ValidationFailed(errors={p["field"]: [p["en"]] for p in problems})
    user = row.to_user()
    db.session.add(user)
    db.session.flush()
    code = activation.issue([user])[user.id]
    _event(actor, "user.create", user, f"新建（{ROLE_LABELS_ZH[user.role]}）",
           {"role": [None, user.role], "region": [None, user.region_code]})
    db.session.commit()
    return user, code


def disable_person(actor: User, user: User) -> User:
    if user.disabled_at is None:
        now = utcnow()
        user.disabled_at = now
        revoke_user_sessions(user.id, "user_disabled", at=now)
        _event(actor, "user.disable", user, "停用", {"disabled": [False, True]})
    db.session.commit()
    return user


def enable_person(actor: User, user: User) -> User:
    if user.disabled_at is not None:
        user.disabled_at = None
        _event(actor, "user.enable", user, "启用", {"disabled": [True, False]})
    db.session.commit()
    return user


def move_person(actor: User, user: User, region_text: str) -> User:
    region = _resolve_region(actor, region_text)
    if not can_manage(actor, user.role, region):
        raise Forbidden("person_not_manageable")
    before = user.region_code
    if region.code != before:
        user.region_code = region.code
        user.region = region
        paths = name_paths([before, region.code])
        _event(actor, "user.move", user, f"调至 {paths[region.code]}", {"region": [before, region.code]})
    db.session.commit()
    return user


def reset_person(actor: User, user: User) -> tuple[User, str]:
    """Force a new login on every phone (their outboxes stay on the phones) and issue a new code."""
    user.password_hash = activation.NO_PASSWORD
    revoke_user_sessions(user.id, "user_reset")
    code = activation.issue([user])[user.id]
    _event(actor, "user.reset", user, "重置（发放新激活码）")
    db.session.commit()
    return user, code


# ---------------------------------------------------------------------------------------------- rosters


@dataclass
class RosterRow:
    number: int  # as a spreadsheet shows it: the header is row 1
    username: str
    display_name: str
    phone: str
    role: str
    region_text: str
    region: Region | None = None
    role_code: str | None = None

    def to_user(self) -> User:
        return User(username=self.username, display_name=self.display_name or self.username,
                    phone=self.phone or None, role=self.role_code, region_code=self.region.code,
                    password_hash=activation.NO_PASSWORD)


def _problem(row: RosterRow, code: str, column: str) -> dict:
    zh, en = ROW_REASONS[code]
    return {"row": row.number, "username": row.username, "field": column, "code": code, "zh": zh, "en": en}


@dataclass
class Roster:
    actor: User
    rows: list[RosterRow]
    finder: RegionFinder = field(default_factory=RegionFinder)

    def check(self) -> list[dict]:
        """Every bad row (row number, column, stable code, Chinese and English reason); nothing written."""
        taken = self._existing({row.username for row in self.rows})
        seen: set[str] = set()
        problems = []
        for row in self.rows:
            problems.extend(self._check_row(row, taken, seen))
        return problems

    def _check_row(self, row: RosterRow, taken: set[str], seen: set[str]) -> list[dict]:
        problems = []
        if not USERNAME.match(row.username):
            problems.append(_problem(row, "bad_username", "username"))
        elif row.username in seen:
            problems.append(_problem(row, "duplicate_in_file", "username"))
        elif row.username in taken:
            problems.append(_problem(row, "already_exists", "username"))
        seen.add(row.username)
        row.role_code = ROLE_WORDS.get(row.role.strip().lower()) or ROLE_WORDS.get(row.role.strip())
        if row.role_code is None:
            problems.append(_problem(row, "bad_role", "role"))
        row.region = self.finder.find(row.region_text)
        if row.region is not None and not region_visible(row.region, self.actor):
            row.region = None  # another township's place is unknown here, exactly as a missing one
        if row.region is None:
            problems.append(_problem(row, "unknown_region", "region"))
        elif row.role_code and not can_manage(self.actor, row.role_code, row.region):
            problems.append(_problem(row, "not_yours", "region"))
        if row.phone and not PHONE.match(row.phone):
            problems.append(_problem(row, "bad_phone", "phone"))
        return problems

    @staticmethod
    def _existing(usernames: set[str]) -> set[str]:
        names = sorted(usernames)
        taken = set()
        for start in range(0, len(names), 500):
            taken.update(db.session.scalars(select(User.username).where(User.username.in_(names[start:start + 500]))))
        return taken

    def apply(self) -> list[tuple[User, str]]:
        """Create every row's account with an activation code, all or nothing. Raises RosterError
        (``roster_has_errors``) when any row is bad."""
        problems = self.check()
        if problems:
            raise RosterError("roster_has_errors", count=len({p["row"] for p in problems}),
                              errors={f"row {p['row']}": [f"{p['code']}: {p['zh']} / {p['en']}"] for p in problems})
        users = [row.to_user() for row in self.rows]
        db.session.add_all(users)
        db.session.flush()
        codes = activation.issue(users)
        audit.record(self.actor, "user.import", "user", None, region_code=_common_region(users),
                     summary=f"导入花名册 {len(users)} 人", changes={"created": len(users)})
        db.session.commit()
        return [(user, codes[user.id]) for user in users]


def _common_region(users: list[User]) -> str | None:
    """The deepest region holding every imported account (so that township's reviewers see the event)."""
    regions = [u.region for u in users if u.region is not None] or \
        [db.session.get(Region, u.region_code) for u in users]
    common = None
    for level in LEVELS:
        codes = {getattr(r, f"{level}_code") for r in regions}
        if len(codes) != 1 or None in codes:
            break
        common = codes.pop()
    return common


# ---------------------------------------------------------------------------------------------- files


def read_roster(filename: str, data: bytes) -> list[RosterRow]:
    """Rows of a CSV (UTF-8 or GB18030, as Excel in China saves it) or XLSX roster. Raises RosterError
    (``roster_bad_file``, ``roster_too_large``, ``roster_no_header``, ``roster_too_many_rows``)."""
    limit = current_app.config["ROSTER_MAX_BYTES"]
    if len(data) > limit:
        raise RosterError("roster_too_large", status=413, limit=limit)
    name = (filename or "").lower()
    if data[:4] == b"PK\x03\x04" or name.endswith(".xlsx"):
        table = _xlsx_rows(data)
    elif name.endswith((".csv", ".txt")) or not name:
        table = _csv_rows(data)
    else:
        raise RosterError("roster_bad_file")
    return _rows_from(table)


def _csv_rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RosterError("roster_bad_file")
    if "\x00" in text:
        raise RosterError("roster_bad_file")
    try:
        return list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise RosterError("roster_bad_file") from exc


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        limit = current_app.config["ROSTER_MAX_ROWS"] + 1
        rows = []
        for values in sheet.iter_rows(values_only=True):
            rows.append(["" if v is None else str(v) for v in values])
            if len(rows) > limit + 1:
                break
        book.close()
        return rows
    except Exception as exc:  # a zip that is no workbook, a broken workbook: openpyxl raises many kinds
        raise RosterError("roster_bad_file") from exc


def _rows_from(table: list[list[str]]) -> list[RosterRow]:
    numbered = [(n, row) for n, row in enumerate(table, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise RosterError("roster_no_header", columns=", ".join(COLUMNS))
    header = [cell.strip().lower() for cell in numbered[0][1]]
    index = {}
    for key, names in COLUMNS.items():
        index[key] = next((i for i, cell in enumerate(header) if cell in names), None)
    missing = [key for key in ("username", "role", "region") if index[key] is None]
    if missing:
        raise RosterError("roster_no_header", columns=", ".join(missing))
    if len(numbered) - 1 > current_app.config["ROSTER_MAX_ROWS"]:
        raise RosterError("roster_too_many_rows", limit=current_app.config["ROSTER_MAX_ROWS"])

    def cell(values, key):
        i = index[key]
        return values[i].strip() if i is not None and i < len(values) else ""

    return [RosterRow(n, *(cell(values, key) for key in COLUMNS)) for n, values in numbered[1:]]


def codes_csv(created: list[tuple[User, str]]) -> str:
    """The printable sheet: username, display name, activation code (answered once, never stored)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["用户名 username", "姓名 display name", "激活码 activation code"])
    writer.writerows([user.username, user.display_name, code] for user, code in created)
    return "\ufeff" + out.getvalue()

