"""A regions GeoJSON import in the admin console: the plan (created, renamed, moved, reshaped) is shown
before anything is written, then applied and audited; a bad file is a JSON error, never a 500."""

from __future__ import annotations

import copy

from factories import CITY, GRID_A1, MICRO_A1_1, TOWN_A, VILLAGE_A1

from app.extensions import db
from app.regions.models import Region

URL = "/api/v1/admin/regions/import"


def _stored(app, code):
    with app.app_context():
        region = db.session.get(Region, code)
        return region.to_dict() | {"geometry": region.geometry} if region else None


def _feature(app, code, **props):
    with app.app_context():
        region = db.session.get(Region, code)
        import json
        return {"type": "Feature", "geometry": json.loads(region.geometry) if region.geometry else None,
                "properties": {"code": region.code, "name": region.name, "level": region.level,
                               "parent": region.parent_code} | props}


def _doc(app):
    micro = _feature(app, MICRO_A1_1, name="万松社区第1网格一号微网格（新）")
    grid = _feature(app, GRID_A1)
    ring = grid["geometry"]["coordinates"][0] if grid["geometry"]["type"] == "Polygon" else None
    new = copy.deepcopy(micro) | {"properties": micro["properties"] | {"code": MICRO_A1_1 + "9", "name": "新微网格"}}
    doc = {"type": "FeatureCollection", "features": [micro, new, _feature(app, TOWN_A), _feature(app, VILLAGE_A1)]}
    return doc, ring


def test_the_preview_lists_the_plan_and_writes_nothing_then_apply_writes(app, client, auth):
    doc, _ = _doc(app)
    before = _stored(app, MICRO_A1_1)
    r = client.post(URL, json={"geojson": doc}, headers=auth.headers("admin"))
    assert r.status_code == 200, r.get_json()
    plan = r.get_json()
    assert plan["dry_run"] is True
    assert [c["code"] for c in plan["created"]] == [MICRO_A1_1 + "9"]
    assert [(c["code"], c["old_name"]) for c in plan["renamed"]] == [(MICRO_A1_1, before["name"])]
    assert plan["moved"] == [] and plan["reshaped"] == [] and plan["unchanged"] == 2
    assert len(plan["features"]["features"]) == 4
    assert _stored(app, MICRO_A1_1) == before and _stored(app, MICRO_A1_1 + "9") is None

    r = client.post(f"{URL}?dry_run=false", json={"geojson": doc}, headers=auth.headers("admin"))
    assert r.status_code == 200 and r.get_json()["dry_run"] is False
    assert _stored(app, MICRO_A1_1)["name"] == "万松社区第1网格一号微网格（新）"
    assert _stored(app, MICRO_A1_1 + "9")["parent"] == GRID_A1
    [event] = client.get("/api/v1/admin/audit?action=regions.apply", headers=auth.headers("admin")).get_json()
    assert event["changes"]["created"] == 1


def test_a_moved_and_a_reshaped_region_are_shown_with_their_old_boundary(app, client, auth):
    micro = _feature(app, MICRO_A1_1, parent="33038100100102")  # under grid A2
    ring = micro["geometry"]["coordinates"][0]
    smaller = [[x + (0.00001 if i in (0, len(ring) - 1) else 0), y] for i, (x, y) in enumerate(ring)]
    village = _feature(app, VILLAGE_A1)
    village["geometry"] = copy.deepcopy(village["geometry"])
    grid_a2 = _feature(app, "33038100100102")
    grid_a2["geometry"] = village["geometry"]  # wide enough to hold the micro-grid
    micro["geometry"] = {"type": "Polygon", "coordinates": [smaller]}
    r = client.post(URL, json={"geojson": {"type": "FeatureCollection", "features": [micro, grid_a2]}},
                    headers=auth.headers("admin"))
    assert r.status_code == 200, r.get_json()
    plan = r.get_json()
    assert [(m["code"], m["old_parent"]) for m in plan["moved"]] == [(MICRO_A1_1, GRID_A1)]
    assert {m["code"] for m in plan["reshaped"]} == {MICRO_A1_1, "33038100100102"}
    assert {f["id"] for f in plan["before"]["features"]} == {MICRO_A1_1, "33038100100102"}


def test_a_bad_file_is_a_json_error_and_only_admins_may(app, client, auth):
    admin = auth.headers("admin")
    for geojson, code in (({"type": "Feature"}, "region_import_failed"),
                          ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
                              "type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
                              "properties": {"code": "X1", "name": "自交", "level": "township", "parent": CITY}}]},
                           "region_import_failed"),
                          ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None,
                              "properties": {"code": TOWN_A, "name": "降级", "level": "village",
                                             "parent": CITY}}]}, "region_import_failed")):
        for dry in ("true", "false"):
            r = client.post(f"{URL}?dry_run={dry}", json={"geojson": geojson}, headers=admin)
            assert r.status_code == 422 and r.get_json()["code"] == code, r.get_json()
    assert client.post(URL, json={"geojson": "nope"}, headers=admin).get_json()["code"] == "validation_failed"
    assert client.post(URL, data="{", content_type="application/json", headers=admin).status_code == 400
    assert _stored(app, TOWN_A)["level"] == "township"
    assert client.post(URL, json={"geojson": {}}, headers=auth.headers("reviewer")).status_code == 403
