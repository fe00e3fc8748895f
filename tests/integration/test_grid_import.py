"""`lianqin import grids FILE.geojson`: a real district's grids replace the demo's, validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from helpers import drain
from sqlalchemy import select

from dashboard.cli import main
from dashboard.demo.district import generate_district, seed_district
from dashboard.geo import wgs84_to_gcj02
from dashboard.models import Case, Grid, MapFeature
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.loop import Worker


def square(lon: float, lat: float, d: float = 0.01) -> list[list[list[float]]]:
    return [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]


def feature(code: Any, geometry: Any = None, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry or {"type": "Polygon", "coordinates": square(116.30, 39.90)},
        "properties": {"code": code, "name": f"网格 {code}", "kind": "residential", **props},
    }


def run(runtime: Runtime, tmp_path: Path, data: Any, *args: str) -> Any:
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    env = {
        "REDIS_URL": runtime.redis_url,
        "DATABASE_URL": runtime.settings.effective_database_url,
        "LIANQIN_STREAM_PREFIX": runtime.settings.stream_prefix,
        "LIANQIN_DATA_DIR": str(tmp_path),
    }
    return CliRunner().invoke(main, ["import", "grids", str(path), *args], env=env)


def test_grids_replace_the_demo_districts_and_workers_reload(
    runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.db.write() as session:
        seed_district(session, generate_district())
    worker = Worker(runtime, None, consumer="grids")
    worker.prepare()
    assert len(worker.grids) == 133
    collection = {
        "type": "FeatureCollection",
        "features": [
            feature("BJ-001"),
            feature(
                "BJ-002",
                {"type": "MultiPolygon", "coordinates": [square(116.31, 39.90)]},
                kind="market",
            ),
            feature("BJ-001-01", level="micro", parent="BJ-001",
                    geometry={"type": "Polygon", "coordinates": square(116.30, 39.90, 0.005)}),
        ],
    }  # fmt: skip
    result = run(runtime, tmp_path, collection)
    assert result.exit_code == 0, result.output
    assert "loaded 2 grids and 1 micro-grids" in result.output
    with runtime.db.read() as session:
        grids = {g.code: g for g in session.scalars(select(Grid))}
        assert set(grids) == {"BJ-001", "BJ-002", "BJ-001-01"}
        assert grids["BJ-001-01"].parent_code == "BJ-001" and grids["BJ-002"].kind == "market"
        assert abs(grids["BJ-001"].centroid_lat - 39.905) < 1e-6
        features = list(session.scalars(select(MapFeature)))
        assert [f.kind for f in features] == ["outline"]  # the demo's roads are gone
    worker.housekeeping()  # the bumped grids version makes it reload
    assert len(worker.grids) == 2
    Producer(runtime.redis, runtime.settings).incident(
        id="BJ-C1", status="reported", ts="2026-11-23T10:00:00+08:00", lat=39.905, lon=116.315,
        category="noise",
    )  # fmt: skip
    drain(worker)
    with runtime.db.read() as session:
        case = session.get(Case, "BJ-C1")
        assert case is not None and case.grid_code == "BJ-002"


def test_gcj02_files_are_stored_as_wgs84(runtime: Runtime, tmp_path: Path) -> None:
    lat, lon = wgs84_to_gcj02(39.90, 116.30)
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    collection = {"type": "FeatureCollection", "features": [feature("G1", geometry)]}
    result = run(runtime, tmp_path, collection, "--crs", "gcj02")
    assert result.exit_code == 0, result.output
    with runtime.db.read() as session:
        grid = session.get(Grid, "G1")
        assert grid is not None
        first = grid.geometry["coordinates"][0][0]
        assert abs(first[0] - 116.30) < 1e-6 and abs(first[1] - 39.90) < 1e-6


def test_invalid_files_are_refused_with_every_reason_and_nothing_changes(
    runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.db.write() as session:
        seed_district(session, generate_district())
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    bad = {
        "type": "FeatureCollection",
        "features": [
            feature("A 1"),
            feature("B", kind="castle"),
            feature("C", {"type": "Point", "coordinates": [116.3, 39.9]}),
            feature("D", {"type": "Polygon", "coordinates": square(39.9, 116.3)}),
            feature("E", bowtie),
            feature("F"),
            feature("F"),
            feature("M", level="micro", parent="NOPE"),
            {"type": "Feature", "geometry": None},
        ],
    }
    result = run(runtime, tmp_path, bad)
    assert result.exit_code != 0
    out = result.output
    for expected in (
        "feature 1 (A 1): code must be",
        "feature 2 (B): kind must be one of",
        "feature 3 (C): geometry must be a Polygon or MultiPolygon",
        "feature 4 (D): position [39.9, 116.3] out of range",
        "feature 5 (E): invalid polygon: Self-intersection",
        "feature 7 (F): code F already used by feature 6",
        "micro-grid M: parent 'NOPE' is not a grid of the file",
        "feature 9: no properties",
    ):
        assert expected in out, (expected, out)
    for data, message in (
        ({"type": "Feature"}, "must hold a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "has no features"),
    ):
        result = run(runtime, tmp_path, data)
        assert result.exit_code != 0 and message in result.output
    (tmp_path / "broken.geojson").write_text("{not json", encoding="utf-8")
    broken = CliRunner().invoke(
        main,
        ["import", "grids", str(tmp_path / "broken.geojson")],
        env={"DATABASE_URL": runtime.settings.effective_database_url},
    )
    assert broken.exit_code != 0 and "is not JSON" in broken.output
    with runtime.db.read() as session:
        assert len(list(session.scalars(select(Grid.code).where(Grid.level == "grid")))) == 133
