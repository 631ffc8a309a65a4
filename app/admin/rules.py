"""The rules an admin keeps: categories, time limits (sla_rules), the working-day calendar and the region
boundaries. Each action is recorded in the audit log in the change's own transaction; all of them are
nationwide (``region_code=None``), except region imports, recorded under no region too (they may span many).
The rules themselves live in app/cases (models, deadlines) and app/regions; this module only edits them."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import func, select

from app.admin import audit
from app.cases.deadlines import coverage
from app.cases.models import CalendarDay, Case, Category, SlaRule
from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.regions import services as regions
from app.users.models import User

CATEGORY_FIELDS = ("name_zh", "name_en", "roles", "sort", "active")
SLA_FIELDS = ("limit_minutes", "clock")


class CalendarImportFailed(DomainError):
    status = 422
    code = "calendar_import_failed"


# ---------------------------------------------------------------------------------------------- categories


def _category_state(category: Category) -> dict:
    return {key: getattr(category, key) for key in CATEGORY_FIELDS}


def list_categories() -> list[Category]:
    """Every category, active or not, in the report form's order."""
    return list(db.session.scalars(select(Category).order_by(Category.sort, Category.code)))


def get_category(code: str) -> Category:
    category = db.session.get(Category, code)
    if category is None:
        raise NotFound()
    return category


def create_category(actor: User, data: dict) -> Category:
    """A new category, last in the picker unless ``sort`` says otherwise; Conflict(category_exists)."""
    if db.session.get(Category, data["code"]) is not None:
        raise Conflict("category_exists", errors={"code": [f"{data['code']!r} exists"]})
    if data.get("sort") is None:
        data["sort"] = (db.session.scalar(select(func.max(Category.sort))) or 0) + 1
    category = Category(active=True, **data)
    db.session.add(category)
    audit.record(actor, "category.create", "category", category.code, summary=f"新增类别 {category.name_zh}",
                 changes=audit.diff({}, _category_state(category)))
    db.session.commit()
    return category


def update_category(actor: User, code: str, data: dict) -> Category:
    """Rename, re-role, move or (de)activate a category."""
    category = get_category(code)
    before = _category_state(category)
    for key, value in data.items():
        setattr(category, key, value)
    changes = audit.diff(before, _category_state(category))
    if changes:
        action = "category.rename" if {"name_zh", "name_en"} & changes.keys() else "category.update"
        audit.record(actor, action, "category", code, summary=f"{before['name_zh']} → {category.name_zh}"
                     if "name_zh" in changes else f"修改类别 {category.name_zh}", changes=changes)
    db.session.commit()
    return category


def reorder_categories(actor: User, codes: list[str]) -> list[Category]:
    """The picker order: the codes given first, in that order; the others keep their order after them.
    NotFound for an unknown code."""
    by_code = {c.code: c for c in list_categories()}
    unknown = [c for c in codes if c not in by_code]
    if unknown:
        raise NotFound(errors={"codes": [f"unknown category {c!r}" for c in unknown]})
    order = list(dict.fromkeys(codes)) + [c for c in by_code if c not in codes]
    before = [c for c in by_code]
    for sort, code in enumerate(order):
        by_code[code].sort = sort
    audit.record(actor, "category.reorder", "category", None, summary="调整类别顺序",
                 changes={"order": [before, order]})
    db.session.commit()
    return list_categories()


def delete_category(actor: User, code: str) -> None:
    """Delete an unused category; Conflict(category_in_use) when a case or a time limit names it (deactivate
    it instead: its cases keep their category)."""
    category = get_category(code)
    used = db.session.scalar(select(func.count()).select_from(Case).where(Case.category == code))
    rules = db.session.scalar(select(func.count()).select_from(SlaRule).where(SlaRule.category == code))
    if used or rules:
        raise Conflict("category_in_use", errors={"code": [f"{used} case(s), {rules} time limit(s) use it"]})
    audit.record(actor, "category.delete", "category", code, summary=f"删除类别 {category.name_zh}",
                 changes=audit.diff(_category_state(category), {}))
    db.session.delete(category)
    db.session.commit()


# ---------------------------------------------------------------------------------------------- time limits


def list_sla_rules() -> list[SlaRule]:
    return list(db.session.scalars(select(SlaRule).order_by(SlaRule.stage, SlaRule.risk_level,
                                                             SlaRule.category, SlaRule.level)))


def _rule_label(rule: SlaRule) -> str:
    return " ".join(x for x in (rule.stage, rule.risk_level, rule.category, rule.level) if x)


def _check_category(code: str | None) -> None:
    if code is not None and db.session.get(Category, code) is None:
        raise NotFound(errors={"category": [f"unknown category {code!r}"]})


def create_sla_rule(actor: User, data: dict) -> SlaRule:
    """A limit for one stage and colour, optionally one category and level. Stages that start from now on
    take it; running stages keep theirs. Conflict when the same key has a rule."""
    _check_category(data.get("category"))
    key = {k: data.get(k) for k in ("stage", "risk_level", "category", "level")}
    same = select(SlaRule).where(*((getattr(SlaRule, k).is_(None) if v is None else getattr(SlaRule, k) == v)
                                   for k, v in key.items()))
    if db.session.scalars(same).first() is not None:
        raise Conflict(errors={"rule": ["a rule for this stage, colour, category and level exists"]})
    rule = SlaRule(**data)
    db.session.add(rule)
    db.session.flush()
    audit.record(actor, "sla_rule.create", "sla_rule", rule.id, summary=f"新增时限 {_rule_label(rule)}",
                 changes=audit.diff({}, {k: getattr(rule, k) for k in (*key, *SLA_FIELDS)}))
    db.session.commit()
    return rule


def update_sla_rule(actor: User, rule_id: int, data: dict) -> SlaRule:
    """A new limit or clock for new stages (running stages keep the limit they started with)."""
    rule = db.session.get(SlaRule, rule_id)
    if rule is None:
        raise NotFound()
    before = {k: getattr(rule, k) for k in SLA_FIELDS}
    for key, value in data.items():
        setattr(rule, key, value)
    changes = audit.diff(before, {k: getattr(rule, k) for k in SLA_FIELDS})
    if changes:
        audit.record(actor, "sla_rule.update", "sla_rule", rule.id, summary=f"修改时限 {_rule_label(rule)}",
                     changes=changes)
    db.session.commit()
    return rule


def delete_sla_rule(actor: User, rule_id: int) -> None:
    """Remove a rule: new stages fall back to the more general rule (or the built-in defaults)."""
    rule = db.session.get(SlaRule, rule_id)
    if rule is None:
        raise NotFound()
    audit.record(actor, "sla_rule.delete", "sla_rule", rule.id, summary=f"删除时限 {_rule_label(rule)}",
                 changes={k: [getattr(rule, k), None] for k in SLA_FIELDS})
    db.session.delete(rule)
    db.session.commit()


# ---------------------------------------------------------------------------------------------- calendar

KINDS = {"holiday": False, "休": False, "off": False, "workday": True, "班": True, "work": True}


def parse_calendar_csv(text: str) -> dict[date, tuple[bool, str]]:
    """Lines ``date,kind[,name]`` (kind: holiday/休/off or workday/班/work; ``#`` comments and blank lines
    skipped; a day named twice: the later line wins). Raises CalendarImportFailed listing every bad line."""
    rows: dict[date, tuple[bool, str]] = {}
    problems = []
    for number, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            day = date.fromisoformat(row[0].strip())
            workday = KINDS[row[1].strip().lower()]
        except (ValueError, IndexError, KeyError):
            problems.append(f"line {number}: expected date,holiday|workday[,name]: {','.join(row)[:80]}")
            continue
        rows[day] = (workday, row[2].strip()[:64] if len(row) > 2 else "")
    if problems:
        raise CalendarImportFailed(errors={"file": problems[:50]})
    if not rows:
        raise CalendarImportFailed(errors={"file": ["no days in the file"]})
    return rows


def import_calendar(actor: User | None, text: str, *, dry_run: bool = False) -> dict:
    """Add or update the days of a calendar CSV. With ``dry_run`` nothing is written; either way the answer
    says how many days are new, changed or the same, and the coverage the calendar would then have."""
    rows = parse_calendar_csv(text)
    known = {d.day: d for d in db.session.scalars(select(CalendarDay).where(CalendarDay.day.in_(list(rows))))}
    added = [d for d in rows if d not in known]
    changed = [d for d in rows if d in known and (known[d].workday, known[d].name) != rows[d]]
    for day in added + changed:
        entry = known.get(day) or CalendarDay(day=day)
        entry.workday, entry.name = rows[day]
        db.session.add(entry)
    db.session.flush()
    result = {"dry_run": dry_run, "days": len(rows), "added": len(added), "changed": len(changed),
              "unchanged": len(rows) - len(added) - len(changed),
              "first": min(rows), "last": max(rows), "coverage": coverage()}
    if dry_run:
        db.session.rollback()
        return result
    if actor is not None:
        audit.record(actor, "calendar.import", "calendar", None, summary=f"导入日历 {len(rows)} 天",
                     changes={k: result[k] for k in ("days", "added", "changed")})
    db.session.commit()
    return result


# ---------------------------------------------------------------------------------------------- regions


def import_regions(actor: User, doc, *, tolerance_m: float, dry_run: bool) -> dict:
    """The plan of a GeoJSON import (what would be created, renamed, moved, reshaped), applied unless
    ``dry_run``. Raises RegionImportFailed listing every problem; nothing is written then."""
    plan = regions.plan_import(doc, tolerance_m=tolerance_m)
    if dry_run:
        return {"dry_run": True, **plan}
    counts = regions.import_regions(doc, tolerance_m=tolerance_m, commit=False)
    audit.record(actor, "regions.apply", "region", None, summary=(
        f"导入区域：新增 {counts['created']}，更新 {counts['updated']}，迁移 {counts['moved']}"), changes=counts)
    db.session.commit()
    regions.invalidate_index()
    return {"dry_run": False, **plan}
