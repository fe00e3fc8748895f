"""The demo district: counts, geometry (tiling), identifiers, determinism, and seeding."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from shapely.geometry import Point, shape
from shapely.strtree import STRtree
from sqlalchemy import func, select

from dashboard import db
from dashboard.config import Settings
from dashboard.contract.entries import ID_RE
from dashboard.demo.district import KIND_COUNTS, District, generate_district, seed_district
from dashboard.models import Department, Facility, Grid, MapFeature, Unit, Zone

# 1e-6 degrees is about 0.1 m: the rounding of the coordinates.
TOL_DEG = 2e-6
TOL_AREA = 1e-9  # deg², about 10 m²


@pytest.fixture(scope="module")
def district() -> District:
    return generate_district(7)


def test_grid_counts_and_kinds(district: District) -> None:
    assert len(district.grids) == 133
    assert Counter(g.kind for g in district.grids) == {
        "residential": 106,
        "market": 9,
        "campus": 6,
        "commercial": 4,
        "rural": 8,
    }
    assert KIND_COUNTS == Counter(g.kind for g in district.grids)
    assert [g.code for g in district.grids] == [f"G{n:03d}" for n in range(1, 134)]
    assert all(g.level == "grid" and g.parent_code is None for g in district.grids)
    assert len({g.name for g in district.grids}) == 133


def test_grids_tile_the_outline_without_overlaps(district: District) -> None:
    outline = shape(district.outline)
    assert outline.is_valid and outline.geom_type == "Polygon"
    polys = [shape(g.geometry) for g in district.grids]
    assert all(p.is_valid and p.geom_type == "Polygon" and p.area > 0 for p in polys)
    total = sum(p.area for p in polys)
    assert total == pytest.approx(outline.area, rel=1e-9)
    tree = STRtree(polys)
    for k, poly in enumerate(polys):
        for other in tree.query(poly, predicate="intersects"):
            if int(other) != k:
                assert poly.intersection(polys[int(other)]).area < TOL_AREA
        assert outline.buffer(TOL_DEG).contains(poly)


def test_district_is_about_8_by_6_km_around_chongqing(district: District) -> None:
    (south, west), (north, east) = district.bounds
    assert 29.30 < south < district.center[0] < north < 29.45
    assert 106.20 < west < district.center[1] < east < 106.32
    width_km = (east - west) * 111.32 * 0.8715
    height_km = (north - south) * 111.32
    assert 7.0 < width_km < 9.5 and 5.0 < height_km < 7.5


def test_rural_at_the_edges_commercial_in_the_centre(district: District) -> None:
    outline = shape(district.outline)
    centre = Point(district.center[1], district.center[0])
    for grid in district.grids:
        poly = shape(grid.geometry)
        if grid.kind == "rural":
            assert poly.exterior.distance(outline.exterior) < TOL_DEG  # touches the boundary
        if grid.kind == "commercial":
            assert poly.distance(centre) < 0.005


def test_micro_grids_tile_their_parents(district: District) -> None:
    micro = district.micro_grids
    assert len(micro) == 997
    assert len({m.code for m in micro}) == 997
    parents = {g.code: g for g in district.grids}
    per_parent = Counter(m.parent_code or "" for m in micro)
    assert set(per_parent) == set(parents)
    assert set(per_parent.values()) <= {7, 8}
    areas: Counter[str] = Counter()
    for m in micro:
        assert m.parent_code is not None
        parent = parents[m.parent_code]
        poly = shape(m.geometry)
        assert poly.is_valid and poly.area > 0
        assert shape(parent.geometry).buffer(TOL_DEG).contains(poly)
        assert m.level == "micro" and m.kind == parent.kind and m.zone_code == parent.zone_code
        assert m.code.startswith(parent.code + "-")
        assert poly.contains(Point(m.centroid_lon, m.centroid_lat))
        areas[m.parent_code] += poly.area
    for code, area in areas.items():
        assert area == pytest.approx(
            shape(parents[code].geometry).area, rel=2e-4
        )  # rounding to 1e-6°
    # Micro-grids of one parent do not overlap one another.
    for code in list(parents)[:30]:
        polys = [shape(m.geometry) for m in micro if m.parent_code == code]
        for a in range(len(polys)):
            for b in range(a + 1, len(polys)):
                assert polys[a].intersection(polys[b]).area < TOL_AREA


def test_zones_partition_the_district_with_stations_inside(district: District) -> None:
    assert [z.code for z in district.zones] == [f"Z{n}" for n in range(1, 8)]
    zones = {z.code: z for z in district.zones}
    for zone in district.zones:
        geom = shape(zone.geometry)
        assert geom.is_valid and geom.geom_type == "Polygon"
        assert geom.contains(Point(zone.station_lon, zone.station_lat))
        assert zone.station_name.endswith("警务站") and zone.name and zone.name_en
    assert sum(shape(z.geometry).area for z in district.zones) == pytest.approx(
        shape(district.outline).area, rel=1e-9
    )
    for grid in district.grids:
        assert grid.zone_code in zones
        assert shape(zones[grid.zone_code].geometry).buffer(TOL_DEG).contains(shape(grid.geometry))
        assert grid.code in zones[grid.zone_code].grid_codes


def test_facilities(district: District) -> None:
    kinds = Counter(f.kind for f in district.facilities)
    assert kinds == {"camera": 105, "sensor": 40, "station": 7}
    assert len({f.id for f in district.facilities}) == len(district.facilities)
    grids = {g.code: shape(g.geometry) for g in district.grids}
    for f in district.facilities:
        assert grids[f.grid_code].buffer(TOL_DEG).contains(Point(f.lon, f.lat)), f
        assert f.name
    kinds_of_sensor_grids = {
        g.kind
        for g in district.grids
        if g.code in {f.grid_code for f in district.facilities_of("sensor")}
    }
    assert kinds_of_sensor_grids == {"market", "residential"}


def test_departments_and_units(district: District) -> None:
    departments = {d.id: d for d in district.departments}
    for dep in ("police", "city_mgmt", "market_supervision", "environment", "civil_affairs",
                "justice", "traffic_police", "fire_rescue"):  # fmt: skip
        assert departments[dep].kind == "department"
    assert sum(d.kind == "volunteer" for d in district.departments) >= 2
    kinds = Counter(u.kind for u in district.units)
    assert kinds["patrol"] == 40 and kinds["grid_worker"] == 133
    assert 10 <= kinds["vehicle"] <= 14 and kinds["volunteer"] == 6
    assert len({u.id for u in district.units}) == len(district.units)
    workers = [u for u in district.units if u.kind == "grid_worker"]
    assert sorted(u.grid_code for u in workers) == [g.code for g in district.grids]
    grids = {g.code: g for g in district.grids}
    zones = {z.code: shape(z.geometry) for z in district.zones}
    for unit in district.units:
        assert unit.department_id in departments
        assert unit.zone_code in zones
        assert grids[unit.grid_code].zone_code == unit.zone_code
        assert zones[unit.zone_code].contains(Point(unit.home_lon, unit.home_lat))
        if unit.kind == "patrol":
            assert unit.department_id == "police"


def test_roads_and_water(district: District) -> None:
    kinds = Counter(r.kind for r in district.roads)
    assert kinds["water"] == 1 and kinds["arterial"] >= 3 and kinds["road"] >= 10
    names = [(r.kind, r.name) for r in district.roads]
    assert len(set(names)) == len(names)  # the seeding key
    assert {"双福大道", "迎宾路"} <= {r.name for r in district.roads}
    outline = shape(district.outline)
    for road in district.roads:
        line = shape(road.geometry)
        assert line.geom_type == "LineString" and line.length > 0
        assert line.intersects(outline)


def test_every_code_matches_the_contract_id_charset(district: District) -> None:
    codes = [
        *(g.code for g in district.grids),
        *(m.code for m in district.micro_grids),
        *(z.code for z in district.zones),
        *(f.id for f in district.facilities),
        *(d.id for d in district.departments),
        *(u.id for u in district.units),
    ]
    bad = [c for c in codes if not ID_RE.fullmatch(c)]
    assert not bad


def test_geometry_is_json_and_lon_lat_ordered(district: District) -> None:
    text = json.dumps(
        [
            district.outline,
            *(g.geometry for g in district.grids),
            *(z.geometry for z in district.zones),
        ]
    )
    assert json.loads(text)[0]["type"] == "Polygon"
    lon, lat = district.grids[0].geometry["coordinates"][0][0]
    assert 100 < lon < 110 and 25 < lat < 35
    ring = shape(district.grids[0].geometry).exterior
    assert ring.is_ccw  # RFC 7946: exterior rings counter-clockwise


def test_grid_index_finds_each_grid_by_its_centroid(district: District) -> None:
    for grid in district.grids:
        assert district.grid_index.locate(grid.centroid_lat, grid.centroid_lon) == grid.code


def test_deterministic_for_a_seed() -> None:
    # (how fast it is belongs in bench/, not in a test: no wall-clock limits here)
    a = generate_district(7)
    b = generate_district(7)
    c = generate_district(8)
    assert a.grids == b.grids and a.micro_grids == b.micro_grids
    assert a.facilities == b.facilities and a.units == b.units and a.roads == b.roads
    assert a.outline == b.outline and a.zones == b.zones
    assert a.grids != c.grids
    assert Counter(g.kind for g in c.grids) == KIND_COUNTS


def _table_counts(database: db.Database) -> dict[str, int]:
    with database.read() as s:
        return {
            model.__tablename__: s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Department, Zone, Grid, Facility, MapFeature, Unit)
        }


def test_seed_district_is_idempotent(tmp_path, monkeypatch, district: District) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("LIANQIN_DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path)
    db.upgrade(settings)
    database = db.make_database(settings)
    try:
        with database.write() as s:
            first = seed_district(s, district)
        counts = _table_counts(database)
        assert counts == {
            "departments": len(district.departments),
            "zones": 7,
            "grids": 133 + 997,
            "facilities": 152,
            "map_features": 1 + len(district.roads),
            "units": len(district.units),
        }
        assert first["created"] == sum(counts.values())
        assert first["grids"] == 133 and first["micro_grids"] == 997
        # Live state written since (a unit's status and position) survives a re-seed.
        with database.write() as s:
            unit = s.get(Unit, "P-001")
            assert unit is not None and unit.last_lat is None and unit.kind == "patrol"
            unit.status, unit.last_lat, unit.last_lon = "busy", 29.37, 106.26
        with database.write() as s:
            second = seed_district(s, district)
        assert second["created"] == 0
        assert _table_counts(database) == counts
        with database.read() as s:
            unit = s.get(Unit, "P-001")
            assert unit is not None and unit.status == "busy" and unit.last_lat == 29.37
            micro = s.get(Grid, "G001-01")
            assert micro is not None and micro.level == "micro" and micro.parent_code == "G001"
            zone = s.get(Zone, "Z7")
            assert zone is not None and zone.station_lat is not None
            kinds = set(s.scalars(select(MapFeature.kind)))
            assert {"outline", "road", "arterial", "water"} <= kinds
    finally:
        database.dispose()


@pytest.mark.parametrize("seed", [1, 42, 2026])
def test_other_seeds_are_valid_districts_too(seed: int) -> None:
    d = generate_district(seed)
    assert Counter(g.kind for g in d.grids) == KIND_COUNTS
    assert len(d.micro_grids) == 997
    assert len({g.name for g in d.grids}) == 133
    polys = [shape(g.geometry) for g in d.grids]
    assert all(p.is_valid for p in polys)
    assert sum(p.area for p in polys) == pytest.approx(shape(d.outline).area, rel=1e-9)
    assert all(shape(m.geometry).is_valid for m in d.micro_grids)
    for zone in d.zones:
        assert shape(zone.geometry).contains(Point(zone.station_lon, zone.station_lat))
