"""`GET /api/v1/kpis`: docs/kpis.md's names, periods in the configured time zone, clear 400s."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import drain, fixture_cases

from dashboard.services.kpis import KPI_NAMES
from dashboard.streams import Producer
from dashboard.web.app import runtime_of
from dashboard.worker.loop import Worker


@pytest.fixture
def client(api_client: FlaskClient) -> FlaskClient:
    return api_client  # tests/integration/conftest.py: a viewer token


def test_default_is_today_through_the_streams(app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    p = Producer(rt.redis, rt.settings)
    t = int(time.time() * 1000) - 60_000
    p.incident(id="K-1", status="reported", ts=t, lat=29.37, lon=106.26, category="dispute")
    p.incident(id="K-1", status="closed", ts=t + 30_000)
    p.incident(id="K-2", status="reported", ts=t, lat=29.37, lon=106.26, category="noise")
    p.incident(id="K-3", status="reported", ts=t, lat=29.37, lon=106.26, category="noise")
    p.incident(id="K-3", status="cancelled", ts=t + 1000)
    w = Worker(rt, None, consumer="kpi-api")
    w.prepare()
    drain(w)
    response = client.get("/api/v1/kpis")
    assert response.status_code == 200
    data = response.json
    assert data is not None
    for name in KPI_NAMES:
        assert name in data, name
    assert (data["reported"], data["open"]) == (2, 1)
    assert data["closure_rate"] == 0.5 and data["disposal_rate"] == 0.5
    assert data["dispute_resolution_rate"] == 1.0
    assert data["on_time_rate"] == 1.0  # K-1 closed without a resolved stage, in time
    assert data["dispatch_p50_s"] is None  # nothing dispatched: null, never 0
    assert data["from"].endswith("T00:00:00.000+08:00")
    assert data["tz"] == "Asia/Shanghai"


def test_dates_and_datetimes(app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    with rt.db.write() as session:
        session.add_all(fixture_cases())
    day = client.get("/api/v1/kpis?from=2026-11-23").json
    assert day is not None
    assert (day["from"], day["to"]) == (
        "2026-11-23T00:00:00.000+08:00",
        "2026-11-24T00:00:00.000+08:00",
    )
    assert (day["reported"], day["dispatch_p90_s"]) == (7, 360.0)
    # `to` as a date includes that whole day.
    both = client.get("/api/v1/kpis?from=2026-11-22&to=2026-11-23").json
    assert both is not None and both["reported"] == 8  # H was reported on the 22nd
    # Datetimes: local when they carry no offset; `to` excludes its instant.
    morning = client.get("/api/v1/kpis?from=2026-11-23T08:00&to=2026-11-23T09:00").json
    assert morning is not None and morning["reported"] == 1  # G at 08:00; A at 09:00 is out
    utc = client.get("/api/v1/kpis?from=2026-11-23T00:00:00Z&to=2026-11-23T02:00:00Z").json
    assert utc is not None and utc["reported"] == 2  # 08:00 and 09:00 local


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=yesterday", "from"),
        ("from=2026-11-23&to=2026-13-01", "to"),
        ("from=2026-11-23&to=2026-11-22", "to"),
        ("from=2026-11-23T10:00&to=2026-11-23T10:00", "to"),
    ],
)
def test_bad_parameters_get_400(client: FlaskClient, query: str, field: str) -> None:
    response = client.get(f"/api/v1/kpis?{query}")
    assert response.status_code == 400
    assert response.json is not None and field in response.json["fields"]


def test_needs_a_token(app: Flask) -> None:
    assert app.test_client().get("/api/v1/kpis").status_code == 401


def test_geo_layers_shift_for_gcj02_tiles(app: Flask, client: FlaskClient) -> None:
    from dashboard.demo.district import generate_district, seed_district
    from dashboard.geo import wgs84_to_gcj02

    with runtime_of(app).db.write() as session:
        seed_district(session, generate_district())
    plain = client.get("/api/v1/geo/facilities?kind=station").json
    shifted = client.get("/api/v1/geo/facilities?kind=station&crs=gcj02").json
    assert plain is not None and shifted is not None
    lon, lat = plain["features"][0]["geometry"]["coordinates"]
    glat, glon = wgs84_to_gcj02(lat, lon)
    assert shifted["features"][0]["geometry"]["coordinates"] == [round(glon, 7), round(glat, 7)]
    bad = client.get("/api/v1/geo/zones?crs=bd09")
    assert bad.status_code == 400 and bad.json is not None and "crs" in bad.json["fields"]
