"""The map fits whatever geography is loaded: outline, else grids, else zones, else the
points on it (an import without a district) — never an empty default far away (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.models import Case, Facility, Unit, Zone
from dashboard.runtime import Runtime
from dashboard.services.geo import DEFAULT_CENTER, map_view


def _case(n: int, lat: float, lon: float) -> Case:
    at = datetime(2013, 10, 30, tzinfo=UTC) + timedelta(minutes=n)
    return Case(
        id=f"C{n}", status="reported", category="noise", lat=lat, lon=lon,
        reported_at=at, status_since=at, status_ts=at,
    )  # fmt: skip


def test_an_empty_database_opens_on_the_default(runtime: Runtime) -> None:
    with runtime.db.read() as session:
        view = map_view(session)
    assert view.center == DEFAULT_CENTER


def test_imported_cases_alone_set_the_view_and_a_stray_point_does_not(runtime: Runtime) -> None:
    with runtime.db.write() as session:
        session.add_all(
            _case(n, 40.60 + 0.003 * (n % 100), -74.00 + 0.002 * (n % 97)) for n in range(300)
        )
        session.add(_case(999, 0.0, 0.0))  # a stray point (null island)
    with runtime.db.read() as session:
        view = map_view(session)
    (south, west), (north, east) = view.bounds
    assert 40.55 < south < 40.61 and 40.89 < north < 40.95, view.bounds
    assert -74.05 < west < -73.99 and -73.81 < east < -73.75, view.bounds
    assert view.zoom >= 10


def test_units_and_facilities_count_and_zones_come_before_points(runtime: Runtime) -> None:
    with runtime.db.write() as session:
        session.add(Unit(id="U1", last_lat=30.27, last_lon=120.15))
        session.add(Facility(id="CAM-1", kind="camera", lat=30.29, lon=120.17))
    with runtime.db.read() as session:
        (south, west), (north, east) = map_view(session).bounds
    assert south < 30.27 < 30.29 < north and west < 120.15 < 120.17 < east
    square = [[[120.0, 30.0], [120.1, 30.0], [120.1, 30.1], [120.0, 30.1], [120.0, 30.0]]]
    with runtime.db.write() as session:
        polygon = {"type": "Polygon", "coordinates": square}
        session.add(Zone(code="Z1", name="巡区", geometry=polygon))
    with runtime.db.read() as session:
        assert map_view(session).bounds == ((30.0, 120.0), (30.1, 120.1))
