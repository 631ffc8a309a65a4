"""WGS-84 / GCJ-02 / BD-09 conversions: published reference vectors, exact round trips, the China box."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.geo.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# How far a converted point may land from where it should: the precision the product promises.
TOLERANCE_M = 0.5


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, lon) points; plenty exact at this scale."""
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


# --- Published reference vectors ------------------------------------------------------------------
# All written (lat, lon). Sources list (lon, lat) in coordtransform and gcoord; swapped here.

WGS_GCJ_PAIRS = [
    # (wgs84, gcj02, source)
    # googollee/eviltransform python/test.py, TESTS "shanghai"
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215), "eviltransform shanghai"),
    # googollee/eviltransform python/test.py, TESTS "shenzhen"
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363), "eviltransform shenzhen"),
    # googollee/eviltransform python/test.py, TESTS "beijing"
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657), "eviltransform beijing"),
    # wandergis/coordtransform test/app.js: wgs84togcj02(116.404, 39.915) -> [116.41024449916938, 39.91640428150164]
    ((39.915, 116.404), (39.91640428150164, 116.41024449916938), "coordtransform 116.404,39.915"),
    # hujiulong/gcoord test/unit/crs/WGS84.spec.ts: WGS84 [123, 45] -> GCJ02 [123.00607541, 45.00197815]
    ((45.0, 123.0), (45.00197815, 123.00607541), "gcoord WGS84->GCJ02 123,45"),
]

GCJ_BD_PAIRS = [
    # (gcj02, bd09, source)
    # wandergis/coordtransform test/app.js: gcj02tobd09(116.404, 39.915) -> [116.41036949371029, 39.92133699351021]
    ((39.915, 116.404), (39.92133699351021, 116.41036949371029), "coordtransform gcj02tobd09"),
    # hujiulong/gcoord test/unit/crs/GCJ02.spec.ts: GCJ02 [123, 45] -> BD09 [123.00636499, 45.00636899]
    ((45.0, 123.0), (45.00636899, 123.00636499), "gcoord GCJ02->BD09 123,45"),
    # hujiulong/gcoord test/fixtures/china-cities.json (7 decimals, ~1 cm): 驻马店市, 邢台市, 那曲地区, 沈阳市
    ((33.0115324, 114.022306), (33.0176697, 114.0287781), "gcoord china-cities Zhumadian"),
    ((37.0705911, 114.5048503), (37.0766797, 114.5113116), "gcoord china-cities Xingtai"),
    ((31.4762063, 92.0512438), (31.4824421, 92.0576832), "gcoord china-cities Nagqu"),
    ((41.8057023, 123.4314787), (41.8114013, 123.438095), "gcoord china-cities Shenyang"),
]

BD_TO_GCJ_PUBLISHED = [
    # (bd09, gcj02, source). These libraries publish the one-step inverse, which is a few cm off the
    # exact one at these points, so they check the direction and size of our exact inverse.
    # wandergis/coordtransform test/app.js: bd09togcj02(116.404, 39.915) -> [116.39762729119315, 39.90865673957631]
    ((39.915, 116.404), (39.90865673957631, 116.39762729119315), "coordtransform bd09togcj02"),
    # hujiulong/gcoord test/unit/crs/BD09.spec.ts: BD09 [123, 45] -> GCJ02 [122.99363304, 44.99365430]
    ((45.0, 123.0), (44.99365430, 122.99363304), "gcoord BD09->GCJ02 123,45"),
]

BD_TO_WGS_PUBLISHED = [
    # hujiulong/gcoord test/unit/crs/BD09.spec.ts: BD09 [123, 45] -> WGS84 [122.98762210, 44.99171540]
    ((45.0, 123.0), (44.99171540, 122.98762210), "gcoord BD09->WGS84 123,45"),
]

WGS_BD_PUBLISHED = [
    # hujiulong/gcoord test/unit/crs/WGS84.spec.ts: WGS84 [123, 45] -> BD09 [123.0124491, 45.0083293]
    ((45.0, 123.0), (45.0083293, 123.0124491), "gcoord WGS84->BD09 123,45"),
]

# City centres from hujiulong/gcoord test/fixtures/china-cities.json whose WGS-84 and GCJ-02 columns
# were taken from map services rather than from the formula: they sit ~0.65 m from the formula, so
# they are held to 1 m. They guard against a formula that is self-consistent but not the real one.
SERVICE_WGS_GCJ_PAIRS = [
    ((33.0133556, 114.0164322), (33.0115324, 114.022306), "Zhumadian"),
    ((27.242124, 111.4622119), (27.2388981, 111.4677938), "Shaoyang"),
    ((31.4784436, 92.0499619), (31.4762063, 92.0512438), "Nagqu"),
    ((41.8032629, 123.4253306), (41.8057023, 123.4314787), "Shenyang"),
]


def _ids(cases: list[tuple]) -> list[str]:
    return [case[-1] for case in cases]


@pytest.mark.parametrize(("wgs", "gcj", "source"), WGS_GCJ_PAIRS, ids=_ids(WGS_GCJ_PAIRS))
def test_wgs84_to_gcj02_matches_published(wgs, gcj, source):
    assert haversine_m(wgs84_to_gcj02(*wgs), gcj) < TOLERANCE_M


@pytest.mark.parametrize(("wgs", "gcj", "source"), WGS_GCJ_PAIRS, ids=_ids(WGS_GCJ_PAIRS))
def test_gcj02_to_wgs84_recovers_published_origin(wgs, gcj, source):
    assert haversine_m(gcj02_to_wgs84(*gcj), wgs) < TOLERANCE_M


@pytest.mark.parametrize(("gcj", "bd", "source"), GCJ_BD_PAIRS, ids=_ids(GCJ_BD_PAIRS))
def test_gcj02_to_bd09_matches_published(gcj, bd, source):
    assert haversine_m(gcj02_to_bd09(*gcj), bd) < TOLERANCE_M


@pytest.mark.parametrize(("gcj", "bd", "source"), GCJ_BD_PAIRS, ids=_ids(GCJ_BD_PAIRS))
def test_bd09_to_gcj02_recovers_published_origin(gcj, bd, source):
    assert haversine_m(bd09_to_gcj02(*bd), gcj) < TOLERANCE_M


@pytest.mark.parametrize(("bd", "gcj", "source"), BD_TO_GCJ_PUBLISHED, ids=_ids(BD_TO_GCJ_PUBLISHED))
def test_bd09_to_gcj02_matches_published(bd, gcj, source):
    assert haversine_m(bd09_to_gcj02(*bd), gcj) < TOLERANCE_M


@pytest.mark.parametrize(("bd", "wgs", "source"), BD_TO_WGS_PUBLISHED, ids=_ids(BD_TO_WGS_PUBLISHED))
def test_bd09_to_wgs84_matches_published(bd, wgs, source):
    assert haversine_m(bd09_to_wgs84(*bd), wgs) < TOLERANCE_M


@pytest.mark.parametrize(("wgs", "bd", "source"), WGS_BD_PUBLISHED, ids=_ids(WGS_BD_PUBLISHED))
def test_wgs84_to_bd09_matches_published(wgs, bd, source):
    assert haversine_m(wgs84_to_bd09(*wgs), bd) < TOLERANCE_M


@pytest.mark.parametrize(("wgs", "gcj", "city"), SERVICE_WGS_GCJ_PAIRS, ids=_ids(SERVICE_WGS_GCJ_PAIRS))
def test_formula_agrees_with_map_service_city_centres(wgs, gcj, city):
    assert haversine_m(wgs84_to_gcj02(*wgs), gcj) < 1.0
    assert haversine_m(gcj02_to_wgs84(*gcj), wgs) < 1.0


# --- Exactness across China -----------------------------------------------------------------------

china_lat = st.floats(min_value=18.0, max_value=53.0, allow_nan=False)
china_lon = st.floats(min_value=74.0, max_value=134.0, allow_nan=False)
exhaustive = settings(max_examples=500, database=None)


@exhaustive
@given(lat=china_lat, lon=china_lon)
def test_wgs_gcj_wgs_round_trip(lat, lon):
    assert haversine_m(gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon)), (lat, lon)) < TOLERANCE_M


@exhaustive
@given(lat=china_lat, lon=china_lon)
def test_wgs_bd_wgs_round_trip(lat, lon):
    assert haversine_m(bd09_to_wgs84(*wgs84_to_bd09(lat, lon)), (lat, lon)) < TOLERANCE_M


@exhaustive
@given(lat=china_lat, lon=china_lon)
def test_inverses_are_exact_not_one_step(lat, lon):
    # The one-step inverse misses by up to ~2 m; the iterated one must reproduce the input to the
    # iteration tolerance (1e-9 degrees), i.e. far below a millimetre.
    glat, glon = wgs84_to_gcj02(*gcj02_to_wgs84(lat, lon))
    assert abs(glat - lat) < 1e-8 and abs(glon - lon) < 1e-8
    blat, blon = gcj02_to_bd09(*bd09_to_gcj02(lat, lon))
    assert abs(blat - lat) < 1e-8 and abs(blon - lon) < 1e-8


@exhaustive
@given(lat=china_lat, lon=china_lon)
def test_gcj02_offset_is_a_few_hundred_metres(lat, lon):
    # Catches a swapped lat/lon or a unit slip, which would still round-trip cleanly.
    assert 1.0 < haversine_m(wgs84_to_gcj02(lat, lon), (lat, lon)) < 1000.0


# --- Outside mainland China -----------------------------------------------------------------------

ABROAD = [
    (35.6812, 139.7671),  # Tokyo
    (51.5007, -0.1246),  # London
    (-33.8568, 151.2153),  # Sydney
    (-6.1754, 106.8272),  # Jakarta: inside the longitude band, south of the box
    (56.5, 100.0),  # Siberia: inside the longitude band, north of the box
    (40.0, 70.0),  # Central Asia: inside the latitude band, west of the box
]


@pytest.mark.parametrize(("lat", "lon"), ABROAD)
def test_gcj02_is_wgs84_outside_china(lat, lon):
    assert out_of_china(lat, lon)
    assert wgs84_to_gcj02(lat, lon) == (lat, lon)
    assert gcj02_to_wgs84(lat, lon) == (lat, lon)
    assert to_wgs84(lat, lon, "gcj02") == (lat, lon)


@pytest.mark.parametrize(("lat", "lon"), ABROAD)
def test_bd09_abroad_is_the_baidu_offset_on_wgs84(lat, lon):
    # BD-09 keeps its own small offset everywhere (as gcoord and coordtransform do); only GCJ-02 vanishes.
    assert wgs84_to_bd09(lat, lon) == gcj02_to_bd09(lat, lon)
    assert haversine_m(bd09_to_wgs84(*wgs84_to_bd09(lat, lon)), (lat, lon)) < TOLERANCE_M


def test_box_edges_are_inside():
    assert not out_of_china(0.8293, 72.004)
    assert not out_of_china(55.8271, 137.8347)
    assert out_of_china(55.8272, 120.0)
    assert out_of_china(30.0, 137.8348)


def test_box_is_the_rough_public_one():
    # The box is deliberately the rough one the map SDKs use, so it also covers e.g. Singapore and
    # Seoul; a GCJ-02 point there converts exactly as AMap would have produced it.
    assert not out_of_china(1.2834, 103.8607)  # Singapore
    assert not out_of_china(37.5665, 126.9780)  # Seoul


# --- Dispatch ------------------------------------------------------------------------------------

def test_to_wgs84_dispatches_on_crs():
    lat, lon = 39.915, 116.404
    assert to_wgs84(lat, lon, "wgs84") == (lat, lon)
    assert to_wgs84(lat, lon, "gcj02") == gcj02_to_wgs84(lat, lon)
    assert to_wgs84(lat, lon, "bd09") == bd09_to_wgs84(lat, lon)
    # The three systems really differ here, so a dispatch mix-up cannot pass unnoticed.
    assert haversine_m(to_wgs84(lat, lon, "gcj02"), to_wgs84(lat, lon, "bd09")) > 100


def test_to_wgs84_recovers_a_point_from_each_system():
    wgs = (30.5728, 104.0668)  # Chengdu
    assert haversine_m(to_wgs84(*wgs84_to_gcj02(*wgs), "gcj02"), wgs) < TOLERANCE_M
    assert haversine_m(to_wgs84(*wgs84_to_bd09(*wgs), "bd09"), wgs) < TOLERANCE_M


@pytest.mark.parametrize("crs", ["WGS84", "gcj-02", "bd09ll", "epsg:4326", "", "cgcs2000"])
def test_to_wgs84_rejects_unknown_crs(crs):
    with pytest.raises(ValueError, match="unknown coordinate system"):
        to_wgs84(39.915, 116.404, crs)
