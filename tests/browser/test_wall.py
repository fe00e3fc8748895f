"""The wall in real Chromium: a producer's XADD appears on the map and changes color live."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from demo_process import DemoProcess
from helpers import delta_seq_of
from playwright.sync_api import Page, Response

from dashboard.theme import STATUS_COLORS

pytestmark = pytest.mark.browser


def open_wall(page: Page, demo: DemoProcess, query: str = "") -> None:
    page.goto(f"{demo.url}/wall?token={demo.wall_token}{query}")
    page.wait_for_function(
        "window.lianqin && window.lianqin.seq !== null && window.lianqin.connected"
    )


def xadd_case(client: redis.Redis, case_id: str, status: str, **extra: Any) -> None:
    fields: dict[str, Any] = {"id": case_id, "status": status, "ts": str(int(time.time() * 1000))}
    fields.update({k: str(v) for k, v in extra.items()})
    client.xadd("lq:incidents", fields)


def fill_of(page: Page, case_id: str) -> str | None:
    return page.get_attribute(f'path[data-case="{case_id}"]', "fill")


def test_a_new_case_appears_with_the_reported_color_then_changes_on_dispatch(
    page: Page, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    open_wall(page, demo)
    xadd_case(producer_redis, "HZ-B1", "reported", lat=29.372, lon=106.262, category="dispute",
              title="邻里噪音纠纷")  # fmt: skip
    page.wait_for_function("window.lianqin.cases['HZ-B1'] !== undefined", timeout=5000)
    state = page.evaluate("window.lianqin.cases['HZ-B1']")
    assert (state["status"], state["lat"], state["lon"], state["overdue"]) == (
        "reported",
        29.372,
        106.262,
        False,
    )
    page.wait_for_selector('path[data-case="HZ-B1"]')
    assert fill_of(page, "HZ-B1") == STATUS_COLORS["reported"]

    xadd_case(producer_redis, "HZ-B1", "dispatched", unit="P-001")
    page.wait_for_function("window.lianqin.cases['HZ-B1'].status === 'dispatched'", timeout=5000)
    assert fill_of(page, "HZ-B1") == STATUS_COLORS["dispatched"]
    assert page.evaluate("window.lianqin.lastUpdate") > 0
    assert page.evaluate("typeof window.lianqin.cursor") == "string"


def test_a_unit_moves_as_its_pings_arrive(
    page: Page, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    open_wall(page, demo)
    t = int(time.time() * 1000)
    producer_redis.xadd(
        "lq:pings", {"unit": "P-001", "lat": "29.370", "lon": "106.260", "ts": str(t - 2000)}
    )
    page.wait_for_function(
        "window.lianqin.units['P-001'] && window.lianqin.units['P-001'].lat === 29.37"
    )
    box_before = page.locator('[data-unit="P-001"]').bounding_box()
    producer_redis.xadd(
        "lq:pings",
        {
            "unit": "P-001",
            "lat": "29.375",
            "lon": "106.265",
            "ts": str(t),
            "heading": "45",
            "status": "busy",
        },
    )
    page.wait_for_function("window.lianqin.units['P-001'].lat === 29.375")
    unit = page.evaluate("window.lianqin.units['P-001']")
    assert (unit["lon"], unit["status"]) == (106.265, "busy")
    box_after = page.locator('[data-unit="P-001"]').bounding_box()
    assert box_before and box_after
    assert (
        box_after["y"] < box_before["y"] and box_after["x"] > box_before["x"]
    )  # north-east on screen


def test_the_snapshot_has_what_happened_before_the_page_opened(
    page: Page, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    """The dot is painted from GET /live/snapshot, not from a delta: the case's delta is in
    the log before the page opens, the one snapshot the page fetches holds the case at a
    sequence number at or past that delta, and the page applies only deltas after it."""
    xadd_case(producer_redis, "HZ-EARLY", "registered", lat=29.368, lon=106.258, category="noise")
    carried_by = delta_seq_of(producer_redis, "HZ-EARLY")  # applied before the page exists
    # Earlier tests' pages left a shared snapshot that a screen may reuse and catch up from
    # (dashboard/live/snapshot.py): without it, this page's is built after the case.
    producer_redis.delete("lq:live:snapshot:latest")
    snapshots: list[Response] = []
    page.on("response", lambda r: snapshots.append(r) if "/live/snapshot" in r.url else None)
    open_wall(page, demo)
    page.wait_for_function("window.lianqin.cases['HZ-EARLY'] !== undefined", timeout=5000)
    assert fill_of(page, "HZ-EARLY") == STATUS_COLORS["registered"]
    assert len(snapshots) == 1 and snapshots[0].status == 200, [r.url for r in snapshots]
    body = snapshots[0].json()
    assert body["seq"] >= carried_by
    assert [c["status"] for c in body["cases"] if c["id"] == "HZ-EARLY"] == ["registered"]
    assert page.evaluate("window.lq.live.stats.snapshots") == 1


def test_untrusted_text_never_executes(
    page: Page, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    open_wall(page, demo)
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    xadd_case(
        producer_redis,
        "HZ-XSS",
        "reported",
        lat=29.371,
        lon=106.261,
        category="other",
        title=payload,
    )
    page.wait_for_function("window.lianqin.cases['HZ-XSS'] !== undefined", timeout=5000)
    assert page.evaluate("window.lianqin.cases['HZ-XSS'].title") == payload
    assert page.locator("img[src=x]").count() == 0  # the page fixture fails on any dialog


def test_the_wall_shows_the_legend_clock_and_a_live_indicator_in_chinese(
    page: Page, demo: DemoProcess
) -> None:
    open_wall(page, demo)
    assert page.inner_text(".lq-title").startswith("联勤指挥中心")
    legend = page.inner_text("#lq-legend")
    for label in ("上报", "立案", "派遣", "处置中", "已处置", "结案", "作废", "超期"):
        assert label in legend
    page.wait_for_function("document.getElementById('lq-connection').dataset.state === 'live'")
    assert page.inner_text("#lq-clock").count(":") == 2
    root = "document.documentElement"
    overflow = page.evaluate(
        f"{root}.scrollWidth > innerWidth || {root}.scrollHeight > innerHeight"
    )
    assert overflow is False


def test_english_by_query(page: Page, demo: DemoProcess) -> None:
    open_wall(page, demo, "&lang=en")
    assert "Reported" in page.inner_text("#lq-legend")
