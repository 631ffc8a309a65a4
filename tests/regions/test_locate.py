"""Finding the micro-grid that holds a point, and browsing the caller's part of the hierarchy."""

from __future__ import annotations

import random

import pytest
import shapely
from factories import GRID_A1, GRID_A2, GRID_B1, MICRO_A1_1, MICRO_A1_2, MICRO_A2_1, TOWN_A
from shapely.geometry import box, shape

from app.demo.services import EAST, NORTH, SOUTH, WEST, demo_feature_collection
from app.geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from app.regions.services import M_PER_DEG_LAT, MicroGridIndex

LOCATE = "/api/v1/regions/locate"


@pytest.fixture(scope="module")
def micro_grids() -> dict:
    """code -> shapely polygon of every demo micro-grid (256 of them)."""
    return {f["properties"]["code"]: shape(f["geometry"]) for f in demo_feature_collection()["features"]
            if f["properties"]["level"] == "micro_grid"}


@pytest.fixture(scope="module")
def index(micro_grids) -> MicroGridIndex:
    # Deliberately not in code order: ties must not depend on insertion order.
    codes = sorted(micro_grids, reverse=True)
    return MicroGridIndex(codes, [micro_grids[c] for c in codes])


def inside(polygon) -> tuple[float, float]:
    p = polygon.representative_point()
    return p.y, p.x


# ---------------------------------------------------------------------------------------------- the index


def test_point_inside_a_micro_grid(index, micro_grids):
    for code in (MICRO_A1_1, MICRO_A1_2, MICRO_A2_1, "3303810040040404"):
        assert index.locate(*inside(micro_grids[code])) == code


def test_point_on_a_shared_edge_goes_to_the_smaller_code(index, micro_grids):
    a, b = micro_grids[MICRO_A1_1], micro_grids[MICRO_A1_2]
    edge = a.intersection(b)
    assert edge.geom_type == "LineString"
    # Both ends of the shared edge are vertices of both polygons, so exactly on both boundaries.
    for lon, lat in (edge.coords[0], edge.coords[-1]):
        hits = [c for c, g in micro_grids.items() if shapely.intersects_xy(g, lon, lat)]
        assert MICRO_A1_1 in hits and MICRO_A1_2 in hits
        assert index.locate(lat, lon) == min(hits) == MICRO_A1_1


def test_shared_edge_tie_on_exact_squares_either_order():
    left, right = box(0.0, 0.0, 1.0, 1.0), box(1.0, 0.0, 2.0, 1.0)
    for codes, geoms in ((["b", "a"], [left, right]), (["a", "b"], [left, right]), (["b", "a"], [right, left])):
        idx = MicroGridIndex(codes, geoms)
        assert idx.locate(0.5, 1.0) == "a"  # mid-edge, exactly
        assert idx.locate(0.5, 0.5) == codes[geoms.index(left)]
        assert idx.locate(0.5, 1.5) == codes[geoms.index(right)]
        assert idx.locate(0.5, 2.0000001) is None


def test_point_on_an_outer_corner(index):
    # The city's south-west corner belongs to one micro-grid only.
    assert index.locate(SOUTH, WEST) == MICRO_A1_1
    assert index.locate(NORTH, EAST) == "3303810040040404"


def test_point_outside_every_polygon(index):
    assert index.locate(SOUTH - 0.001, WEST + 0.005) is None
    assert index.locate(0.0, 0.0) is None
    assert index.locate(39.9, 116.4) is None


def test_nearest_within_a_tolerance(index):
    lat = SOUTH - 10 / M_PER_DEG_LAT  # 10 m south of the city, below the first micro-grid
    lon = WEST + 0.004
    assert index.locate(lat, lon) is None
    assert index.nearest(lat, lon, max_m=30) == MICRO_A1_1
    assert index.nearest(lat, lon, max_m=5) is None
    assert index.distance_m(MICRO_A1_1, lat, lon) == pytest.approx(10, abs=0.5)
    assert index.distance_m(MICRO_A1_1, *inside(index.by_code[MICRO_A1_1])) == 0.0
    assert index.distance_m("no-such-code", lat, lon) is None


def test_locate_many_agrees_with_locate(index, micro_grids):
    rng = random.Random(7)
    margin = 0.01
    lats = [rng.uniform(SOUTH - margin, NORTH + margin) for _ in range(1000)]
    lons = [rng.uniform(WEST - margin, EAST + margin) for _ in range(1000)]
    # and every lattice vertex, where two to four micro-grids meet
    for polygon in micro_grids.values():
        for lon, lat in polygon.exterior.coords[:-1]:
            lats.append(lat)
            lons.append(lon)
    many = index.locate_many(lats, lons)
    assert many == [index.locate(lat, lon) for lat, lon in zip(lats, lons)]
    found = sum(code is not None for code in many[:1000])
    assert 0 < found < 1000  # some inside, some outside the city
    assert all(code is not None for code in many[1000:])


# ---------------------------------------------------------------------------------------------- the routes


def test_locate_route(client, auth, micro_grids):
    h = auth.headers("admin")
    lat, lon = inside(micro_grids[MICRO_A2_1])
    r = client.get(LOCATE, query_string={"lat": lat, "lon": lon}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["code"] == MICRO_A2_1
    assert body["level"] == "micro_grid"
    assert body["parent"] == GRID_A2
    assert body["has_geometry"] is True


def test_locate_route_shared_vertex_and_corner(client, auth, micro_grids):
    h = auth.headers("admin")
    lon, lat = micro_grids[MICRO_A1_1].intersection(micro_grids[MICRO_A1_2]).coords[0]
    assert client.get(LOCATE, query_string={"lat": lat, "lon": lon}, headers=h).get_json()["code"] == MICRO_A1_1
    r = client.get(LOCATE, query_string={"lat": SOUTH, "lon": WEST}, headers=h)
    assert r.get_json()["code"] == MICRO_A1_1


def test_locate_route_outside(client, auth):
    r = client.get(LOCATE, query_string={"lat": SOUTH - 0.01, "lon": WEST}, headers=auth.headers("admin"))
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "no_micro_grid"


def test_locate_route_converts_gcj02_and_bd09(client, auth, index, micro_grids):
    """A point picked on AMap (GCJ-02, a few hundred metres off) is found in the WGS-84 micro-grid."""
    h = auth.headers("admin")
    polygon = micro_grids[MICRO_A1_2]
    minx, miny, maxx, maxy = polygon.bounds
    # a point of the micro-grid whose GCJ-02 coordinates, read as WGS-84, fall in another micro-grid
    candidates = [(miny + (maxy - miny) * j / 10, minx + (maxx - minx) * i / 10)
                  for j in range(1, 10) for i in range(1, 10)]
    lat, lon = next((la, lo) for la, lo in candidates if index.locate(la, lo) == MICRO_A1_2
                    and index.locate(*wgs84_to_gcj02(la, lo)) != MICRO_A1_2)
    glat, glon = wgs84_to_gcj02(lat, lon)
    r = client.get(LOCATE, query_string={"lat": glat, "lon": glon, "crs": "gcj02"}, headers=h)
    assert r.get_json()["code"] == MICRO_A1_2
    r = client.get(LOCATE, query_string={"lat": glat, "lon": glon}, headers=h)  # taken as WGS-84
    assert r.status_code == 404 or r.get_json()["code"] != MICRO_A1_2
    blat, blon = wgs84_to_bd09(lat, lon)
    r = client.get(LOCATE, query_string={"lat": blat, "lon": blon, "crs": "bd09"}, headers=h)
    assert r.get_json()["code"] == MICRO_A1_2


@pytest.mark.parametrize("query,field", [({"lat": 91, "lon": 120.6}, "lat"), ({"lat": 27.8, "lon": 181}, "lon"),
                                         ({"lat": "nan", "lon": 120.6}, "lat"), ({"lon": 120.6}, "lat"),
                                         ({"lat": 27.8, "lon": 120.6, "crs": "WGS84"}, "crs")])
def test_locate_route_validation(client, auth, query, field):
    r = client.get(LOCATE, query_string=query, headers=auth.headers("admin"))
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "validation_failed"
    assert [k.split(".")[-1] for k in body["errors"]] == [field]


def test_locate_needs_a_token(client):
    r = client.get(LOCATE, query_string={"lat": 27.8, "lon": 120.6})
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_missing"


def test_grid_worker_sees_only_their_grid(client, auth, micro_grids):
    h = auth.headers("wanggeyuan")  # grid worker of GRID_A1
    assert client.get("/api/v1/regions", headers=h).get_json()["code"] == GRID_A1
    assert client.get(f"/api/v1/regions/{GRID_A1}", headers=h).status_code == 200
    assert client.get(f"/api/v1/regions/{MICRO_A1_1}", headers=h).status_code == 200
    for outside in (GRID_A2, MICRO_A2_1, TOWN_A, GRID_B1, "330381", "no-such-region"):
        for suffix in ("", "/children", "/geojson"):
            r = client.get(f"/api/v1/regions/{outside}{suffix}", headers=h)
            assert r.status_code == 404, (outside, suffix)
            assert r.get_json()["code"] == "not_found"
    # a point in the neighbouring grid is answered as if it did not exist
    lat, lon = inside(micro_grids[MICRO_A2_1])
    r = client.get(LOCATE, query_string={"lat": lat, "lon": lon}, headers=h)
    assert r.status_code == 404
    lat, lon = inside(micro_grids[MICRO_A1_2])
    assert client.get(LOCATE, query_string={"lat": lat, "lon": lon}, headers=h).get_json()["code"] == MICRO_A1_2


def test_reviewer_of_another_township_sees_nothing_of_ours(client, auth):
    h = auth.headers("reviewer_b")
    assert client.get(f"/api/v1/regions/{TOWN_A}", headers=h).status_code == 404
    assert client.get(f"/api/v1/regions/{GRID_B1}", headers=h).status_code == 200


def test_region_and_children(client, auth):
    h = auth.headers("reviewer")
    r = client.get(f"/api/v1/regions/{GRID_A1}", headers=h)
    assert r.status_code == 200
    body = r.get_json()
    assert body["level"] == "grid" and body["parent"] == "330381001001"
    assert len(body["bbox"]) == 4 and body["bbox"][0] < body["bbox"][2] and body["bbox"][1] < body["bbox"][3]
    children = client.get(f"/api/v1/regions/{GRID_A1}/children", headers=h).get_json()
    assert [c["code"] for c in children] == [f"{GRID_A1}0{m}" for m in range(1, 5)]
    assert {c["level"] for c in children} == {"micro_grid"}
    assert len(client.get(f"/api/v1/regions/{TOWN_A}/children", headers=h).get_json()) == 4
    assert client.get(f"/api/v1/regions/{MICRO_A1_1}/children", headers=h).get_json() == []
    assert client.get("/api/v1/regions", headers=h).get_json()["code"] == TOWN_A


def test_geojson_of_a_subtree(client, auth, micro_grids):
    h = auth.headers("reviewer")
    r = client.get(f"/api/v1/regions/{TOWN_A}/geojson", headers=h)
    assert r.status_code == 200
    assert r.mimetype == "application/geo+json"
    doc = r.get_json(force=True)
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == 1 + 4 + 16 + 64
    assert all(f["properties"]["code"].startswith(TOWN_A) for f in doc["features"])
    r = client.get(f"/api/v1/regions/{TOWN_A}/geojson", query_string={"level": "micro_grid"}, headers=h)
    doc = r.get_json(force=True)
    assert len(doc["features"]) == 64
    assert {f["properties"]["level"] for f in doc["features"]} == {"micro_grid"}
    feature = next(f for f in doc["features"] if f["id"] == MICRO_A1_1)
    assert feature["properties"]["parent"] == GRID_A1
    assert shape(feature["geometry"]).equals(micro_grids[MICRO_A1_1])
    # names travel as UTF-8, not as \u escapes
    assert "万松社区".encode() in client.get(f"/api/v1/regions/{TOWN_A}/geojson", headers=h).get_data()
    r = client.get(f"/api/v1/regions/{TOWN_A}/geojson", query_string={"level": "district"}, headers=h)
    assert r.status_code == 422


def test_geojson_etag(app, client, auth):
    h = auth.headers("reviewer")
    url = f"/api/v1/regions/{GRID_A1}/geojson"
    first = client.get(url, headers=h)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(url, headers={**h, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    # the same ETag does not stand for another level filter
    filtered = client.get(url, query_string={"level": "micro_grid"}, headers={**h, "If-None-Match": etag})
    assert filtered.status_code == 200
    assert filtered.headers["ETag"] != etag
    # a change to the subtree (re-import of a micro-grid) makes the old ETag stale
    with app.app_context():
        from app.regions.services import import_regions

        feature = next(f for f in demo_feature_collection()["features"] if f["properties"]["code"] == MICRO_A1_1)
        feature["properties"]["name"] = "改名的微网格"
        import_regions({"type": "FeatureCollection", "features": [feature]})
    changed = client.get(url, headers={**h, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert "改名的微网格" in changed.get_data(as_text=True)


def test_farther_than_agrees_with_the_exact_distance():
    """The quick bounds never change the answer of the exact projection."""
    import random

    from shapely.geometry import Polygon

    from app.regions.services import distance_m, farther_than

    rng = random.Random(7)
    square = Polygon([(120.60, 27.80), (120.61, 27.80), (120.61, 27.81), (120.60, 27.81)])
    for _ in range(2000):
        lat, lon = 27.80 + rng.uniform(-0.01, 0.02), 120.60 + rng.uniform(-0.01, 0.02)
        threshold = rng.choice([0.0, 5.0, 30.0, 100.0, 500.0])
        assert farther_than(square, lat, lon, threshold) == (distance_m(square, lat, lon) > threshold)
