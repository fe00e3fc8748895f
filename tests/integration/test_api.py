"""The read API: field names of the contract, timelines, filters, clear 4xx errors."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import drain

from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.web.app import runtime_of
from dashboard.worker.loop import Worker


@pytest.fixture
def client(api_client: FlaskClient) -> FlaskClient:
    return api_client  # tests/integration/conftest.py: a viewer token


@pytest.fixture
def loaded(app: Flask) -> Runtime:
    """Three cases and a unit, through the streams and the worker."""
    rt = runtime_of(app)
    p = Producer(rt.redis, rt.settings)
    t = int(time.time() * 1000) - 120_000
    p.incident(id="HZ-1", status="reported", ts=t, lat=29.3702, lon=106.2610, category="dispute",
               title="邻里噪音纠纷", priority=2, source="grid_app")  # fmt: skip
    p.incident(id="HZ-1", status="dispatched", ts=t + 30_000, unit="P-017", department="police")
    p.incident(id="HZ-2", status="reported", ts=t + 1000, lat=29.37, lon=106.26, category="noise")
    p.incident(id="HZ-3", status="closed", ts="2026-01-02T10:00:00+08:00", lat=29.37, lon=106.26,
               category="other")  # fmt: skip
    p.ping(unit="P-017", lat=29.3711, lon=106.2633, ts=t + 60_000, speed=3.1, heading=270)
    w = Worker(rt, None, consumer="api-test")
    w.prepare()
    drain(w)
    return rt


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_case_with_timeline_uses_the_contract_names(client: FlaskClient, loaded: Runtime) -> None:
    response = client.get("/api/v1/cases/HZ-1")
    assert response.status_code == 200
    case = response.json
    names = "id status ts lat lon category priority source title unit department grid due overdue"
    for name in [*names.split(), "version", "timeline"]:
        assert name in case, name
    assert (case["status"], case["unit"], case["priority"], case["version"]) == (
        "dispatched",
        "P-017",
        2,
        2,
    )
    assert case["title"] == "邻里噪音纠纷"
    assert case["ts"].endswith("+08:00")  # ISO 8601 with the configured offset
    assert [e["status"] for e in case["timeline"]] == ["reported", "dispatched"]  # oldest first
    assert case["timeline"][0]["fields"]["source"] == "grid_app"


def test_case_errors(client: FlaskClient, loaded: Runtime) -> None:
    missing = client.get("/api/v1/cases/HZ-404")
    assert missing.status_code == 404 and "id" in missing.json["fields"]
    bad = client.get("/api/v1/cases/bad%20id")
    assert bad.status_code == 400 and "A-Z" in bad.json["error"]


def test_list_cases_filters(client: FlaskClient, loaded: Runtime) -> None:
    everything = client.get("/api/v1/cases").json
    assert isinstance(everything, list) and {c["id"] for c in everything} == {
        "HZ-1",
        "HZ-2",
        "HZ-3",
    }
    assert [c["id"] for c in client.get("/api/v1/cases?status=reported").json] == ["HZ-2"]
    both = client.get("/api/v1/cases?status=reported,dispatched").json
    assert {c["id"] for c in both} == {"HZ-1", "HZ-2"}
    assert {c["id"] for c in client.get("/api/v1/cases?since=2026-06-01").json} >= {"HZ-1", "HZ-2"}
    assert "HZ-3" not in {c["id"] for c in client.get("/api/v1/cases?since=2026-06-01").json}
    assert len(client.get("/api/v1/cases?limit=1").json) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=5000", "limit"),
        ("since=yesterday", "since"),
    ],
)
def test_list_cases_bad_parameters_get_400_with_the_field(
    client: FlaskClient, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/cases?{query}")
    assert response.status_code == 400
    assert field in response.json["fields"] and response.json["error"]


def test_units(client: FlaskClient, loaded: Runtime) -> None:
    units = client.get("/api/v1/units").json
    assert isinstance(units, list)
    (unit,) = units
    assert (unit["id"], unit["lat"], unit["lon"], unit["heading"]) == (
        "P-017",
        29.3711,
        106.2633,
        270.0,
    )
    assert unit["online"] is True and unit["ts"].endswith("+08:00")


def test_geo_endpoints(client: FlaskClient) -> None:
    for path in ("/api/v1/geo/basemap", "/api/v1/geo/grids", "/api/v1/geo/grids?level=micro",
                 "/api/v1/geo/zones", "/api/v1/geo/facilities?kind=camera"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200 and response.json["type"] == "FeatureCollection", path
    assert client.get("/api/v1/geo/grids?level=nano").status_code == 400


def test_wall_page_is_served(client: FlaskClient) -> None:
    response = client.get("/wall")
    assert response.status_code == 200
    assert b"/assets/lianqin-live.js" in response.data
    assert b"/assets/vendor/socket.io.min.js" in response.data
    # Nothing is loaded from another host (no CDN): every src/href is a path on this app.
    # (Not a substring test: Dash's random ids sometimes contain the letters "cdn".)
    urls = re.findall(rb'(?:src|href)\s*=\s*["\']([^"\']*)', response.data, re.I)
    assert urls, "the page names its scripts"
    assert [u for u in urls if re.match(rb"(?:[a-z][a-z0-9+.-]*:)?//", u, re.I)] == []
