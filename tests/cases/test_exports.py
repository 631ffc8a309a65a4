"""GET /api/v1/cases/export: the filtered queue as a CSV or XLSX ledger and a GeoJSON layer."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from factories import MICRO_B1_1, TOWN_B
from helpers import Phone, report_op
from openpyxl import load_workbook

from app.cases.models import Case
from app.extensions import db


@pytest.fixture
def cases(app, client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    ids = {
        "red": worker.one(report_op(risk="red", description="楼道堆放杂物"))["case_id"],
        "formula": worker.one(report_op(category="sanitation", description="=HYPERLINK(\"http://x\")"))["case_id"],
        "blue": worker.one(report_op(risk="blue", category="gas_safety", description="燃气表箱锈蚀"))["case_id"],
        "town_b": Phone(client, auth, "worker_b").one(
            report_op(micro_grid=MICRO_B1_1, location=None, description="玉海街道的隐患"))["case_id"],
    }
    with app.app_context():
        db.session.get(Case, ids["blue"]).due_at = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    return ids


def _export(client, headers, query, expect=200):
    r = client.get(f"/api/v1/cases/export?{query}", headers=headers)
    assert r.status_code == expect, r.get_data(as_text=True)[:300]
    return r


def _numbers(app, ids):
    with app.app_context():
        return {k: db.session.get(Case, v).number for k, v in ids.items()}


def test_csv_has_a_bom_chinese_headers_and_the_filtered_rows(app, client, auth, cases):
    r = _export(client, auth.headers("reviewer"), "format=csv")
    assert r.mimetype == "text/csv" and r.is_streamed
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="gridcase-cases-') and disposition.count(".csv") == 2
    assert "filename*=UTF-8''%E4%BA%8B%E4%BB%B6%E5%8F%B0%E8%B4%A6-" in disposition  # 事件台账
    raw = r.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header = rows[0]
    for title in ("编号", "状态", "风险等级", "类别", "描述", "镇街", "村社", "网格", "微网格", "上报人", "上报时间",
                  "处置人", "截止时间", "是否超期", "纬度", "经度"):
        assert title in header
    by_number = {row[0]: dict(zip(header, row)) for row in rows[1:]}
    numbers = _numbers(app, cases)
    assert set(by_number) == {numbers["red"], numbers["formula"], numbers["blue"]}
    red = by_number[numbers["red"]]
    assert red["状态"] == "已上报" and red["风险等级"] == "红" and red["类别"] == "消防隐患" and red["镇街"] == "安阳街道"
    assert red["上报人"] == "wanggeyuan" and red["是否超期"] == "否" and red["亮灯"] == "绿"
    assert float(red["纬度"]) == pytest.approx(27.7437) and red["描述"] == "楼道堆放杂物"
    assert by_number[numbers["blue"]]["风险等级"] == "蓝" and by_number[numbers["blue"]]["是否超期"] == "是"
    assert by_number[numbers["formula"]]["描述"] == "'=HYPERLINK(\"http://x\")"  # never run as a formula


def test_csv_takes_the_queue_filters(app, client, auth, cases):
    r = _export(client, auth.headers("reviewer"), "format=csv&risk_level=blue&risk_level=red")
    rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))[1:]
    numbers = _numbers(app, cases)
    assert {row[0] for row in rows} == {numbers["red"], numbers["blue"]}
    r = _export(client, auth.headers("reviewer"), "format=csv&overdue=true")
    assert [row[0] for row in list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))[1:]] == [numbers["blue"]]


def test_xlsx_opens_back_with_chinese_headers(app, client, auth, cases):
    r = _export(client, auth.headers("reviewer"), "format=xlsx&sort=reported_at")
    assert r.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert 'filename="gridcase-cases-' in r.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(r.get_data()), read_only=True)
    sheet = workbook["事件台账"]
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    assert header[:4] == ("编号", "状态", "风险等级", "类别") and "是否超期" in header and "经度" in header
    numbers = _numbers(app, cases)
    assert [row[0] for row in rows[1:]] == [numbers["red"], numbers["formula"], numbers["blue"]]
    red = dict(zip(header, rows[1]))
    assert red["风险等级"] == "红" and red["状态"] == "已上报" and red["网格"] == "万松社区第1网格"
    assert isinstance(red["上报时间"], datetime) and isinstance(red["纬度"], float)
    formula = dict(zip(header, rows[2]))
    assert formula["描述"] == "=HYPERLINK(\"http://x\")"  # kept as text
    workbook.close()
    raw = load_workbook(io.BytesIO(r.get_data()))["事件台账"]
    assert raw.cell(row=3, column=5).data_type == "s"


def test_geojson_is_a_feature_collection_of_points(app, client, auth, cases):
    r = _export(client, auth.headers("reviewer"), "format=geojson&state=reported")
    assert r.mimetype == "application/geo+json" and ".geojson" in r.headers["Content-Disposition"]
    doc = json.loads(r.get_data(as_text=True))
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 3
    feature = next(f for f in doc["features"] if f["id"] == cases["red"])
    assert feature["geometry"]["type"] == "Point"
    assert feature["geometry"]["coordinates"] == pytest.approx([120.5843, 27.7437])
    props = feature["properties"]
    assert props["risk_zh"] == "红" and props["state_zh"] == "已上报" and props["township_name"] == "安阳街道"
    assert props["light"] == "green" and props["overdue"] is False


def test_geojson_of_nothing_is_valid(client, auth, cases):
    r = _export(client, auth.headers("reviewer"), "format=geojson&q=nothing-matches")
    assert json.loads(r.get_data(as_text=True)) == {"type": "FeatureCollection", "features": []}


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "geojson"])
def test_outsiders_export_holds_nothing_of_township_a(app, client, auth, cases, fmt):
    numbers = _numbers(app, cases)
    for username in ("reviewer_b", "volunteer_b"):
        r = _export(client, auth.headers(username), f"format={fmt}")
        data = r.get_data()
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1:]
        elif fmt == "xlsx":
            rows = list(load_workbook(io.BytesIO(data), read_only=True).active.iter_rows(values_only=True))[1:]
        else:
            rows = json.loads(data)["features"]
        expected = 1 if username == "reviewer_b" else 0
        assert len(rows) == expected
        text = data.decode("utf-8", "replace")
        for key in ("red", "formula", "blue"):
            assert cases[key] not in text and numbers[key] not in text
    _export(client, auth.headers("reviewer_b"), "format=csv&region=330381001", expect=404)
    _export(client, auth.headers("reviewer"), f"format={fmt}&region={TOWN_B}", expect=404)


def test_export_cap(app, client, auth, cases):
    app.config["EXPORT_MAX_ROWS"] = 2
    r = _export(client, auth.headers("reviewer"), "format=csv")
    assert len(list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))) == 3


def test_bad_format_is_422(client, auth, cases):
    _export(client, auth.headers("reviewer"), "format=pdf", expect=422)
