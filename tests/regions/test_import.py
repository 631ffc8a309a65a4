"""Importing region boundary files: ``flask regions import FILE`` and ``import_regions``.

A small synthetic city drawn in boxes (degrees, around 27° N) keeps every expectation checkable by eye:

    C  city        120.00-120.04
    T1 township    120.00-120.02      T2 township 120.02-120.04
    V0 village     120.00-120.01      (in T1)
    V1 village     120.01-120.02      (in T1)   V2 village 120.02-120.03 (in T2)
    G1 grid        120.01-120.02, lat 27.00-27.01 (in V1)
    M1, M2         the west and east halves of G1
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from shapely.geometry import box, mapping
from sqlalchemy import func, select

from app.extensions import db
from app.regions.models import Region
from app.regions.services import RegionImportFailed, import_regions

S, N = 27.00, 27.02
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(27.005))


def feature(code, name, level, parent, geometry):
    return {"type": "Feature", "geometry": geometry,
            "properties": {"code": code, "name": name, "level": level, "parent": parent}}


def rect(west, south, east, north):
    return mapping(box(west, south, east, north))


def city_features() -> list[dict]:
    """Children before parents on purpose: the file order must not matter."""
    return [
        feature("M1", "一号微网格", "micro_grid", "G1", rect(120.01, 27.00, 120.015, 27.01)),
        feature("M2", "二号微网格", "micro_grid", "G1", rect(120.015, 27.00, 120.02, 27.01)),
        feature("G1", "第一网格", "grid", "V1", rect(120.01, 27.00, 120.02, 27.01)),
        feature("V0", "东村", "village", "T1", rect(120.00, S, 120.01, N)),
        feature("V1", "西村", "village", "T1", rect(120.01, S, 120.02, N)),
        feature("V2", "南村", "village", "T2", rect(120.02, S, 120.03, N)),
        feature("T1", "一街道", "township", "C", rect(120.00, S, 120.02, N)),
        feature("T2", "二街道", "township", "C", rect(120.02, S, 120.04, N)),
        feature("C", "示例市", "city", None, rect(120.00, S, 120.04, N)),
    ]


def collection(features) -> dict:
    return {"type": "FeatureCollection", "features": features}


def count_regions() -> int:
    return db.session.scalar(select(func.count()).select_from(Region))


def names() -> dict[str, str]:
    return dict(db.session.execute(select(Region.code, Region.name)).all())


@pytest.fixture
def empty_app(empty_database_url, tmp_path):
    """An app on a database with the tables but no regions at all (not the demo city)."""
    from app import create_app
    from app.regions.services import invalidate_index

    invalidate_index()
    app = create_app({"TESTING": True, "DATABASE_URL": empty_database_url, "MEDIA_DIR": str(tmp_path / "media"),
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def imported(empty_app):
    """The synthetic city, imported."""
    import_regions(collection(city_features()))
    return empty_app


def write(tmp_path, doc, name="regions.geojson") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------- good files


def test_parents_after_children_and_level_codes(empty_app):
    result = import_regions(collection(city_features()))
    assert result == {"created": 9, "updated": 0, "moved": 0}
    assert count_regions() == 9
    m1 = db.session.get(Region, "M1")
    assert (m1.level, m1.parent_code) == ("micro_grid", "G1")
    assert m1.level_codes() == {"city_code": "C", "township_code": "T1", "village_code": "V1",
                                "grid_code": "G1", "micro_grid_code": "M1"}
    assert [m1.min_lon, m1.min_lat, m1.max_lon, m1.max_lat] == pytest.approx([120.01, 27.00, 120.015, 27.01])
    assert db.session.get(Region, "C").parent_code is None
    assert db.session.get(Region, "V2").township_code == "T2"


def test_reimport_updates_and_never_duplicates(imported):
    features = city_features()
    for f in features:
        f["properties"]["name"] += "（新）"
    result = import_regions(collection(features))
    assert result == {"created": 0, "updated": 9, "moved": 0}
    assert count_regions() == 9
    assert names()["G1"] == "第一网格（新）"
    assert all(name.endswith("（新）") for name in names().values())


def test_parent_may_already_be_in_the_database(imported):
    result = import_regions(collection([
        feature("M3", "三号微网格", "micro_grid", "G1", rect(120.012, 27.002, 120.014, 27.004))]))
    assert result["created"] == 1
    assert db.session.get(Region, "M3").level_codes() == {
        "city_code": "C", "township_code": "T1", "village_code": "V1", "grid_code": "G1", "micro_grid_code": "M3"}


@pytest.mark.parametrize("with_descendants", [False, True])
def test_moved_region_takes_its_descendants_along(imported, with_descendants):
    """V1 is redrawn into T2 (the township boundary moves west); its grid and micro-grids follow."""
    features = [
        feature("T1", "一街道", "township", "C", rect(120.00, S, 120.01, N)),
        feature("T2", "二街道", "township", "C", rect(120.01, S, 120.04, N)),
        feature("V1", "西村", "village", "T2", rect(120.01, S, 120.02, N)),
    ]
    if with_descendants:
        features += [f for f in city_features() if f["properties"]["code"] in ("G1", "M1", "M2")]
    result = import_regions(collection(features))
    assert result["moved"] >= 1
    db.session.expire_all()
    for code in ("V1", "G1", "M1", "M2"):
        region = db.session.get(Region, code)
        assert region.township_code == "T2", code
        assert region.city_code == "C"
        assert region.village_code == "V1"
    assert db.session.get(Region, "M1").grid_code == "G1"
    assert db.session.get(Region, "V1").parent_code == "T2"
    # T1's subtree is now only itself and V0
    in_t1 = db.session.scalars(select(Region.code).where(Region.township_code == "T1").order_by(Region.code))
    assert list(in_t1) == ["T1", "V0"]
    assert count_regions() == 9


@pytest.mark.parametrize("metres", [1, 4])
def test_a_sliver_within_the_tolerance_is_accepted(imported, metres):
    # M1 reaches ``metres`` west of G1 (and of V1 … C): real boundary data has slivers like this.
    dlon = metres / M_PER_DEG_LON
    import_regions(collection([feature("M1", "一号微网格", "micro_grid", "G1",
                                       rect(120.01 - dlon, 27.00, 120.015, 27.01))]),
                   tolerance_m=5.0)
    assert db.session.get(Region, "M1").min_lon == pytest.approx(120.01 - dlon)


# ---------------------------------------------------------------------------------------------- bad files


def _add(f):
    def mutate(features):
        features.append(f)
        return collection(features)
    return mutate


def _bowtie(features):
    features.append(feature("M9", "坏微网格", "micro_grid", "G1", {"type": "Polygon", "coordinates": [[
        [120.011, 27.001], [120.013, 27.003], [120.013, 27.001], [120.011, 27.003], [120.011, 27.001]]]}))
    return collection(features)


def _sticks_out(metres):
    def mutate(features):
        dlon = metres / M_PER_DEG_LON
        features.append(feature("M9", "出界微网格", "micro_grid", "G1", rect(120.01 - dlon, 27.00, 120.012, 27.002)))
        return collection(features)
    return mutate


def _duplicate(features):
    features.append(feature("M1", "又一个一号", "micro_grid", "G1", rect(120.011, 27.001, 120.012, 27.002)))
    return collection(features)


def _cycle(features):
    features.append(feature("X1", "甲村", "village", "X2", None))
    features.append(feature("X2", "乙村", "village", "X1", None))
    return collection(features)


def _level_change(features):
    features[0]["properties"]["level"] = "grid"  # M1, a micro-grid in the database
    features[0]["properties"]["parent"] = "V1"
    return collection(features)


BAD = {
    "unknown_parent": (_add(feature("M9", "孤儿", "micro_grid", "NOPE", None)),
                       ["feature 9 (M9)", "unknown parent 'NOPE'"]),
    "village_under_grid": (_add(feature("V9", "错村", "village", "G1", None)),
                           ["feature 9 (V9)", "level out of order", "village", "grid 'G1'"]),
    "grid_under_micro_grid": (_add(feature("G9", "错网格", "grid", "M1", None)),
                              ["feature 9 (G9)", "level out of order", "micro_grid 'M1'"]),
    "bowtie": (_bowtie, ["feature 9 (M9)", "invalid polygon", "Self-intersection"]),
    "point": (_add(feature("M9", "一个点", "micro_grid", "G1", {"type": "Point", "coordinates": [120.011, 27.001]})),
              ["feature 9 (M9)", "'Point' is not Polygon or MultiPolygon"]),
    "sticks_out_6m": (_sticks_out(6), ["feature 9 (M9)", "outside its parent 'G1'", "tolerance 5 m"]),
    "sticks_out_50m": (_sticks_out(50), ["feature 9 (M9)", "outside its parent 'G1'"]),
    "duplicate_code": (_duplicate, ["feature 9 (M1)", "appears twice", "also feature 0"]),
    "cycle": (_cycle, ["feature 9 (X1)", "feature 10 (X2)"]),
    "city_with_parent": (_add(feature("C2", "另一市", "city", "C", None)), ["feature 9 (C2)", "level out of order"]),
    "township_without_parent": (_add(feature("T9", "无主街道", "township", None, None)),
                                ["feature 9 (T9)", "a township needs a parent"]),
    "not_a_feature": (_add({"type": "Point", "coordinates": [1, 2]}), ["feature 9", "not a GeoJSON Feature"]),
    "not_a_feature_collection": (lambda features: {"type": "GeometryCollection", "features": features},
                                 ["not a GeoJSON FeatureCollection"]),
    "features_not_a_list": (lambda features: {"type": "FeatureCollection", "features": {"a": 1}},
                            ["not a GeoJSON FeatureCollection"]),
    "level_changes_on_reimport": (_level_change, ["feature 0 (M1)", "level cannot change"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_names_the_feature_and_imports_nothing(imported, case):
    mutate, expected = BAD[case]
    features = copy.deepcopy(city_features())
    for f in features:  # valid renames in the same file must not be written either
        f["properties"]["name"] += "（改）"
    before = names()
    with pytest.raises(RegionImportFailed) as caught:
        import_regions(mutate(features))
    text = "\n".join(caught.value.problems)
    for piece in expected:
        assert piece in text, text
    assert caught.value.status == 422
    assert caught.value.errors == {"features": caught.value.problems}
    db.session.expire_all()
    assert count_regions() == 9
    assert names() == before


def test_every_problem_is_listed_not_just_the_first(imported):
    features = city_features() + [feature("M8", "孤儿", "micro_grid", "NOPE", None),
                                  feature("T9", "无主街道", "township", None, None)]
    with pytest.raises(RegionImportFailed) as caught:
        import_regions(collection(features))
    assert len(caught.value.problems) == 2


def test_nothing_imported_into_an_empty_database_either(empty_app):
    features = city_features() + [feature("M9", "孤儿", "micro_grid", "NOPE", None)]
    with pytest.raises(RegionImportFailed):
        import_regions(collection(features))
    assert count_regions() == 0


# ---------------------------------------------------------------------------------------------- the command


def test_cli_import_prints_progress_and_summary(empty_app, tmp_path):
    runner = empty_app.test_cli_runner()
    path = write(tmp_path, collection(city_features()))
    result = runner.invoke(args=["regions", "import", path])
    assert result.exit_code == 0, result.output
    assert "检查 checking" in result.stderr  # the progress bar's label (no terminal: no animation)
    assert "imported: 9 created, 0 updated, 0 moved" in result.stdout
    assert count_regions() == 9
    result = runner.invoke(args=["regions", "import", path])
    assert result.exit_code == 0, result.output
    assert "imported: 0 created, 9 updated, 0 moved" in result.stdout
    assert count_regions() == 9


def test_cli_refuses_a_bad_file_and_says_nothing_was_imported(empty_app, tmp_path):
    features = city_features() + [feature("M9", "孤儿", "micro_grid", "NOPE", None)]
    result = empty_app.test_cli_runner().invoke(args=["regions", "import", write(tmp_path, collection(features))])
    assert result.exit_code != 0
    assert "error: feature 9 (M9): unknown parent 'NOPE'" in result.stderr
    assert "1 problem(s); nothing was imported" in result.stderr
    assert count_regions() == 0


@pytest.mark.parametrize("content", ["{not json", "\ufeff[", b"\xff\xfe\x00garbage"])
def test_cli_refuses_invalid_json(empty_app, tmp_path, content):
    path = tmp_path / "broken.geojson"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = empty_app.test_cli_runner().invoke(args=["regions", "import", str(path)])
    assert result.exit_code != 0
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.output
    assert count_regions() == 0


def test_cli_uses_the_configured_tolerance(empty_app, tmp_path):
    import_regions(collection(city_features()))
    dlon = 50 / M_PER_DEG_LON
    path = write(tmp_path, collection([feature("M9", "出界微网格", "micro_grid", "G1",
                                               rect(120.01 - dlon, 27.00, 120.012, 27.002))]))
    runner = empty_app.test_cli_runner()
    result = runner.invoke(args=["regions", "import", path])
    assert result.exit_code != 0
    assert "feature 0 (M9): lies outside its parent 'G1'" in result.stderr
    empty_app.config["REGION_CONTAINMENT_TOLERANCE_M"] = 60.0
    result = runner.invoke(args=["regions", "import", path])
    assert result.exit_code == 0, result.output
    assert count_regions() == 10


def test_cli_imports_the_demo_city_on_the_demo_database(runner, tmp_path, app):
    """The demo city (341 regions) re-imported over itself: all updated, nothing created."""
    from app.demo.services import demo_feature_collection

    result = runner.invoke(args=["regions", "import", write(tmp_path, demo_feature_collection())])
    assert result.exit_code == 0, result.output
    assert "imported: 0 created, 341 updated, 0 moved" in result.stdout
    with app.app_context():
        assert count_regions() == 341
