"""A center's own data, not the demo's: `lianqin import …` into a fresh data directory, then
`lianqin serve`; the wall's map fits what was loaded (issue 15, real data)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import close_page, open_page
from playwright.sync_api import Browser
from serve_process import ServeProcess, run_cli

pytestmark = pytest.mark.browser
DATA = Path(__file__).parents[1] / "data"
SHOTS = Path(__file__).parents[2] / "assets" / "screenshots"


@pytest.fixture(scope="module")
def nyc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("nyc") / "data"
    run_cli(data, "import", "cases", str(DATA / "nyc311-sample.csv"), "--format", "nyc311",
            "--source-tz", "America/New_York")  # fmt: skip
    server = ServeProcess(data, LIANQIN_TZ="America/New_York", LIANQIN_LANGUAGE="zh-CN")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_wall_fits_the_imported_cases_without_a_district(
    browser: Browser, nyc: ServeProcess
) -> None:
    cases = nyc.get("/api/v1/cases?limit=1000").json()
    assert len(cases) >= 150  # the NYC sample: 193 of 199 rows load
    lats = sorted(c["lat"] for c in cases)
    lons = sorted(c["lon"] for c in cases)
    page = open_page(browser, 1920, 1080)
    try:
        page.goto(f"{nyc.url}/wall?token={nyc.token}")
        page.wait_for_function("window.lq && lq.live.map && lq.live.map() && window.lianqin")
        page.wait_for_function(  # fitted above the legend once the map is there
            "(() => { const b = lq.live.map().getBounds(); return b.getNorth() < 60; })()"
        )
        page.wait_for_timeout(1500)  # the dots draw from the snapshot
        bounds = page.evaluate(
            "(() => { const b = lq.live.map().getBounds();"
            " return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; })()"
        )
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "wall-imported-nyc-1920.png"))
    finally:
        errors = list(page.errors)  # type: ignore[attr-defined]
        close_page(page)
    assert not errors, errors
    south, west, north, east = bounds
    # All but the outermost 1 % of the cases are on screen, and the map is not a continent:
    # the sample spans about 0.4° of New York City.
    inner = slice(len(cases) // 100, len(cases) - len(cases) // 100)
    assert south <= lats[inner][0] and lats[inner][-1] <= north, (bounds, lats[0], lats[-1])
    assert west <= lons[inner][0] and lons[inner][-1] <= east, (bounds, lons[0], lons[-1])
    assert north - south < 2.0 and east - west < 3.0, bounds


@pytest.fixture(scope="module")
def hangzhou(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The README's "bring your own district" path on tests/data/district/ (GCJ-02)."""
    data = tmp_path_factory.mktemp("district") / "data"
    district = DATA / "district"
    for kind, file, *args in (
        ("departments", "departments.csv"),
        ("zones", "zones.geojson", "--crs", "gcj02"),
        ("grids", "grids.geojson", "--crs", "gcj02"),
        ("basemap", "basemap.geojson", "--crs", "gcj02"),
        ("stations", "stations.geojson", "--crs", "gcj02"),
        ("cameras", "cameras.geojson", "--crs", "gcj02"),
        ("sensors", "sensors.geojson", "--crs", "cgcs2000"),
        ("units", "units.csv"),
    ):
        run_cli(data, "import", kind, str(district / file), *args)
    server = ServeProcess(data, LIANQIN_CENTER_NAME="西湖区联勤指挥中心")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_wall_of_an_imported_district_fits_it_and_bears_its_name(
    browser: Browser, hangzhou: ServeProcess
) -> None:
    page = open_page(browser, 1920, 1080)
    try:
        page.goto(f"{hangzhou.url}/wall?token={hangzhou.token}")
        page.wait_for_function("window.lq && lq.live.map && lq.live.map() && window.lianqin")
        page.wait_for_function("document.querySelectorAll('.lq-map path').length >= 4")
        page.wait_for_timeout(1000)
        title = page.inner_text(".lq-title")
        bounds = page.evaluate(
            "(() => { const b = lq.live.map().getBounds();"
            " return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; })()"
        )
        page.screenshot(path=str(SHOTS / "wall-imported-district-1920.png"))
        errors = list(page.errors)  # type: ignore[attr-defined]
    finally:
        close_page(page)
    assert not errors, errors
    assert title == "西湖区联勤指挥中心 · 实时态势"
    south, west, north, east = bounds
    # The district (about 2 × 2 km) fills the map rather than sitting in a corner.
    assert south < 30.27 and north > 30.285 and west < 120.146 and east > 120.16, bounds
    assert north - south < 0.08, bounds
