"""README "Bring your own district", run as written on the small district of tests/data/district/
(a made-up one in Hangzhou, its GIS export in GCJ-02): departments and units from CSV, patrol
zones, grids and micro-grids, stations, cameras and sensors from GeoJSON, into a fresh data
directory; then `lianqin serve` serves them back, in WGS-84 (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import ServeProcess, run_cli
from shapely.geometry import Point, shape

from dashboard.geo import gcj02_to_wgs84
from dashboard.imports.district import DistrictImportError, datum, parse_facilities, parse_zones

DISTRICT = Path(__file__).parents[1] / "data" / "district"

# The README's commands, in its order (zones before the grids and stations that name them).
STEPS = [
    ("departments", "departments.csv"),
    ("zones", "zones.geojson", "--crs", "gcj02"),
    ("grids", "grids.geojson", "--crs", "gcj02"),
    ("basemap", "basemap.geojson", "--crs", "gcj02"),
    ("stations", "stations.geojson", "--crs", "gcj02"),
    ("cameras", "cameras.geojson", "--crs", "gcj02"),
    ("sensors", "sensors.geojson", "--crs", "cgcs2000"),
    ("units", "units.csv"),
]


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("district") / "data"
    for kind, file, *args in STEPS:
        run_cli(data, "import", kind, str(DISTRICT / file), *args)
    server = ServeProcess(
        data, LIANQIN_CENTER_NAME="西湖区联勤指挥中心", LIANQIN_TZ="Asia/Shanghai"
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _source(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((DISTRICT / name).read_text(encoding="utf-8"))


def test_the_api_serves_the_imported_district_in_wgs84(district: ServeProcess) -> None:
    grids = district.get("/api/v1/geo/grids").json()["features"]
    assert sorted(f["properties"]["code"] for f in grids) == ["G01", "G02", "G03", "G04"]
    assert {f["properties"]["zone"] for f in grids} == {"Z1", "Z2"}
    micro = district.get("/api/v1/geo/grids?level=micro").json()["features"]
    assert {(f["properties"]["code"], f["properties"]["parent"]) for f in micro} == {
        ("G01-M1", "G01"), ("G01-M2", "G01"),
    }  # fmt: skip
    # GCJ-02 in the file, WGS-84 served: the first corner moved back by Amap's offset.
    lon, lat = _source("grids.geojson")["features"][0]["geometry"]["coordinates"][0][0]
    served = next(f for f in grids if f["properties"]["code"] == "G01")
    wlat, wlon = gcj02_to_wgs84(lat, lon)
    assert served["geometry"]["coordinates"][0][0] == pytest.approx([wlon, wlat], abs=1e-6)
    assert abs(wlon - lon) > 0.003  # the shift is real (hundreds of metres here)

    zones = {f["properties"]["code"]: f["properties"]
             for f in district.get("/api/v1/geo/zones").json()["features"]}  # fmt: skip
    assert zones["Z1"]["name"] == "西片巡区" and zones["Z1"]["station"] == "湖滨派出所"
    assert zones["Z2"]["station_lat"] is not None

    facilities = district.get("/api/v1/geo/facilities").json()["features"]
    by_kind: dict[str, set[str]] = {}
    for f in facilities:
        by_kind.setdefault(f["properties"]["kind"], set()).add(f["properties"]["id"])
    assert by_kind == {
        "station": {"ST-Z1", "ST-Z2"},
        "camera": {"CAM-001", "CAM-002", "CAM-003"},
        "sensor": {"SEN-01", "SEN-02"},
    }
    # A camera is filed under the grid it lies in (after conversion).
    camera = next(f for f in facilities if f["properties"]["id"] == "CAM-001")
    g01 = shape(served["geometry"])
    assert g01.contains(Point(camera["geometry"]["coordinates"]))
    assert camera["properties"]["grid"] == "G01"
    # CGCS2000 is taken as WGS-84 as it is (centimetres apart).
    sensor = next(f for f in facilities if f["properties"]["id"] == "SEN-01")
    raw = next(f for f in _source("sensors.geojson")["features"]
               if f["properties"]["id"] == "SEN-01")  # fmt: skip
    assert sensor["geometry"]["coordinates"] == pytest.approx(raw["geometry"]["coordinates"])

    units = {u["id"]: u for u in district.get("/api/v1/units").json()}
    assert set(units) == {"P-101", "P-102", "GW-01", "V-01"}
    assert units["GW-01"]["kind"] == "grid_worker"
    assert (units["P-101"]["department"], units["P-101"]["zone"]) == ("psb", "Z1")

    # The outline is the union of the grids; the roads and water of the offline base map.
    basemap = district.get("/api/v1/geo/basemap").json()["features"]
    assert [f["properties"]["kind"] for f in basemap] == [
        "outline", "water", "road", "road", "road", "arterial", "arterial",
    ]  # fmt: skip


def test_importing_the_same_files_again_changes_nothing(
    district: ServeProcess, tmp_path: Path
) -> None:
    before = district.get("/api/v1/geo/facilities").json()
    for kind, file, *args in STEPS:
        run_cli(district.data_dir, "import", kind, str(DISTRICT / file), *args, env=district.env)
    assert district.get("/api/v1/geo/facilities").json() == before
    assert len(district.get("/api/v1/units").json()) == 4


def test_a_bad_file_is_reported_whole_and_nothing_is_written() -> None:
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "Z 1"}, "geometry": None},
        {"type": "Feature", "properties": {"code": "Z2", "name": "x"},
         "geometry": {"type": "Point", "coordinates": [1, 2]}},
    ]}  # fmt: skip
    with pytest.raises(DistrictImportError) as err:
        parse_zones(bad)
    assert len(err.value.errors) >= 3  # code, name, geometry of 1; geometry of 2
    with pytest.raises(DistrictImportError, match="Point"):
        parse_facilities(bad, kind="camera")
    assert datum("cgcs2000") == "wgs84" and datum("gcj02") == "gcj02"
