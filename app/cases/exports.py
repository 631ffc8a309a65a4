"""Exports of the review queue: the ledger (台账) as CSV or XLSX, and the map layer as GeoJSON.

Every export is the queue's own select (``queue.queue_select``: scope first, then the same filters), in the
queue's order, without pages but under a hard cap. Memory stays flat however many rows there are: rows come
from the database in batches (``yield_per``, a server-side cursor on PostgreSQL); CSV and GeoJSON are
streamed as they are written; XLSX is written by openpyxl's write-only workbook into a temporary file, which
is then streamed. Headers, states and colours are in Chinese, the language of the people who file them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import datetime
from urllib.parse import quote

from flask import Response, current_app, send_file, stream_with_context
from sqlalchemy import select

from app.cases.deadlines import CHINA
from app.cases.models import RISK_NAMES_ZH, Category
from app.cases.queue import light_of, ordered, queue_select
from app.database import utcnow
from app.extensions import db
from app.regions.models import Region
from app.users.models import User

MAX_EXPORT_ROWS = 1_000_000  # a county's whole history; beyond it, narrow the filters (Excel stops at 1,048,576)
BATCH = 2_000  # rows per round trip: large enough to be fast, small enough to keep memory flat

STATE_NAMES_ZH = {
    "reported": "已上报", "accepted": "已受理", "assigned": "已交办", "in_progress": "处置中", "resolved": "已整改",
    "closed": "已销号", "returned": "退回补充", "rejected": "不予受理", "merged": "已合并",
}
LEVEL_NAMES_ZH = {"grid": "网格", "village": "村社", "township": "镇街", "city": "市"}
STAGE_NAMES_ZH = {"accept": "待受理", "close": "待销号"}
LIGHT_NAMES_ZH = {"green": "绿", "yellow": "黄", "red": "红"}
FLAG_NAMES_ZH = {
    "possible_duplicate": "疑似重复", "outside_micro_grid": "位置不在微网格内", "micro_grid_from_location": "按位置定网格",
    "clock_skew": "设备时间偏差", "exif_mismatch": "照片信息不符", "photo_reused": "照片重复使用",
}

HEADERS = ("编号", "状态", "风险等级", "类别", "描述", "处置层级", "镇街", "村社", "网格", "微网格", "上报人", "上报时间",
           "处置人", "处置单位", "当前环节", "截止时间", "亮灯", "是否超期", "标记", "待处理冲突", "更新时间", "销号时间",
           "纬度", "经度", "事件ID")
WIDTHS = (20, 10, 8, 14, 60, 8, 12, 12, 20, 24, 12, 20, 12, 16, 10, 20, 6, 8, 20, 10, 20, 20, 11, 11, 38)
CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
}


def _local(value: datetime | None) -> datetime | None:
    """China Standard Time without an offset: what a ledger shows (and all Excel can hold)."""
    return value.astimezone(CHINA).replace(tzinfo=None) if value is not None else None


def _text_time(value: datetime | None) -> str:
    local = _local(value)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""


class _Labels:
    """Names for the codes in a row: regions, categories, people are resolved once per export."""

    def __init__(self):
        self.regions = dict(db.session.execute(select(Region.code, Region.name)).all())
        self.categories = dict(db.session.execute(select(Category.code, Category.name_zh)).all())


def _rows(user: User, args: dict, now: datetime):
    """The export's rows, batch by batch, in the queue's order, capped."""
    cap = int(current_app.config.get("EXPORT_MAX_ROWS", MAX_EXPORT_ROWS))
    stmt = ordered(queue_select(user, args, now), args.get("sort") or "-reported_at").limit(cap)
    result = db.session.execute(stmt.execution_options(yield_per=BATCH))
    try:
        yield from result.partitions()
    finally:
        result.close()


def ledger_row(row, labels: _Labels, now: datetime, *, times=_local) -> list:
    """One case as a ledger line, in the order of HEADERS."""
    light = light_of(row, now)
    overdue = row.due_at is not None and row.due_at <= now
    return [
        row.number, STATE_NAMES_ZH.get(row.state, row.state), RISK_NAMES_ZH.get(row.risk_level, row.risk_level),
        labels.categories.get(row.category, row.category), row.description or "",
        LEVEL_NAMES_ZH.get(row.level, row.level), labels.regions.get(row.township_code, row.township_code),
        labels.regions.get(row.village_code, row.village_code), labels.regions.get(row.grid_code, row.grid_code),
        labels.regions.get(row.micro_grid_code, row.micro_grid_code), row.reporter, times(row.reported_at),
        row.assignee or "", row.unit or "", STAGE_NAMES_ZH.get(row.stage, "") if row.stage else "",
        times(row.due_at), LIGHT_NAMES_ZH.get(light, ""), "是" if overdue else "否",
        "、".join(FLAG_NAMES_ZH.get(f, f) for f in row.flags or []), row.open_conflicts,
        times(row.updated_at), times(row.closed_at), row.lat, row.lon, row.id,
    ]


def _disposition(ext: str, now: datetime) -> str:
    day = now.astimezone(CHINA).strftime("%Y%m%d")
    ascii_name = f"gridcase-cases-{day}.{ext}"
    chinese = quote(f"事件台账-{day}.{ext}")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{chinese}"


# ---------------------------------------------------------------------------------------------- formats

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value):
    # A cell starting like a formula is run by Excel (CSV injection); a leading apostrophe keeps it text.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _csv(user: User, args: dict, now: datetime):
    labels = _Labels()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"  # the BOM: Excel then reads the file as UTF-8, not as GBK
    writer.writerow(HEADERS)
    for batch in _rows(user, args, now):
        for row in batch:
            writer.writerow([_csv_safe(v) for v in ledger_row(row, labels, now, times=_text_time)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _geojson(user: User, args: dict, now: datetime):
    labels = _Labels()
    yield '{"type":"FeatureCollection","features":['
    first = True
    for batch in _rows(user, args, now):
        parts = []
        for row in batch:
            geometry = {"type": "Point", "coordinates": [row.lon, row.lat]} if row.lat is not None else None
            light = light_of(row, now)
            props = {
                "id": row.id, "number": row.number, "state": row.state,
                "state_zh": STATE_NAMES_ZH.get(row.state, row.state), "risk_level": row.risk_level,
                "risk_zh": RISK_NAMES_ZH.get(row.risk_level, row.risk_level), "category": row.category,
                "category_zh": labels.categories.get(row.category, row.category), "level": row.level,
                "description": row.description or "", "micro_grid_id": row.micro_grid_code,
                "micro_grid_name": labels.regions.get(row.micro_grid_code), "grid_code": row.grid_code,
                "village_code": row.village_code, "township_code": row.township_code,
                "township_name": labels.regions.get(row.township_code), "reporter": row.reporter,
                "assignee": row.assignee, "reported_at": row.reported_at.isoformat(),
                "due_at": row.due_at.isoformat() if row.due_at else None, "clock": row.stage_clock, "light": light,
                "overdue": row.due_at is not None and row.due_at <= now, "flags": row.flags or [],
                "open_conflicts": row.open_conflicts, "version": row.version,
            }
            parts.append(json.dumps({"type": "Feature", "id": row.id, "geometry": geometry, "properties": props},
                                    ensure_ascii=False, separators=(",", ":")))
        if parts:
            yield ("" if first else ",") + ",".join(parts)
            first = False
    yield "]}"


def write_xlsx(user: User, args: dict, now: datetime, path: str) -> int:
    """Write the ledger to ``path`` with openpyxl's write-only workbook (rows go to disk as they come);
    returns the number of cases written."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    labels = _Labels()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("事件台账")
    for index, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for title in HEADERS:
        cell = WriteOnlyCell(sheet, title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    count = 0
    for batch in _rows(user, args, now):
        for row in batch:
            values = ledger_row(row, labels, now)
            for i, value in enumerate(values):
                if isinstance(value, str):
                    value = ILLEGAL_CHARACTERS_RE.sub("", value)
                    if value.startswith("="):
                        # openpyxl would store it as a formula; a reporter's text is never one
                        cell = WriteOnlyCell(sheet, value)
                        cell.data_type = "s"
                        value = cell
                    values[i] = value
            sheet.append(values)
            count += 1
    workbook.save(path)
    return count


def _xlsx(user: User, args: dict, now: datetime) -> Response:
    fd, path = tempfile.mkstemp(prefix="gridcase-export-", suffix=".xlsx")
    os.close(fd)
    try:
        write_xlsx(user, args, now, path)
        handle = open(path, "rb")  # noqa: SIM115 (closed by the response once sent)
    finally:
        os.unlink(path)  # the open handle keeps the bytes until the response is sent
    response = send_file(handle, mimetype=CONTENT_TYPES["xlsx"], max_age=0, conditional=False)
    response.headers["Content-Disposition"] = _disposition("xlsx", now)
    return response


def export(user: User, args: dict, fmt: str) -> Response:
    """The filtered queue as a file to download. Raises NotFound for a region outside the caller's scope
    (checked before the first byte goes out)."""
    now = utcnow()
    queue_select(user, args, now)  # a region out of scope is a 404, not a broken download
    if fmt == "xlsx":
        return _xlsx(user, args, now)
    body = _csv(user, args, now) if fmt == "csv" else _geojson(user, args, now)
    response = Response(stream_with_context(body), mimetype=CONTENT_TYPES[fmt])
    response.headers["Content-Disposition"] = _disposition(fmt, now)
    response.headers["Cache-Control"] = "no-store"
    return response
