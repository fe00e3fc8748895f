"""The dispatch console in real Chromium on a running demo (with its simulator): a shift
lead reassigns a case and another screen (the wall) shows it; a viewer is kept out; an
operator gets a read-only console; the keyboard; the README's screenshot.

Set LIANQIN_UPDATE_SCREENSHOTS=1 to write the README's screenshot (assets/screenshots/).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from demo_process import DemoProcess
from helpers import close_page, open_page, screenshot_dir
from playwright.sync_api import Browser, Page

from dashboard.theme import STATUS_COLORS

pytestmark = pytest.mark.browser
LAT, LON = 29.3725, 106.2622


def sign_in(page: Page, demo: DemoProcess, user: str, target: str = "/dispatch") -> None:
    page.goto(f"{demo.url}/login?next={target}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", demo.password(user))
    page.click("button[type=submit]")


def open_console(browser: Browser, demo: DemoProcess, user: str) -> Page:
    page = open_page(browser)
    sign_in(page, demo, user)
    page.wait_for_function(
        "window.lianqin && window.lianqin.connected && window.lianqin.seq !== null",
        timeout=30_000,
    )
    page.wait_for_selector("#lq-queue .ag-row", timeout=20_000)
    return page


def xadd_case(
    client: redis.Redis, case_id: str, status: str, age_s: float = 0, **extra: Any
) -> None:
    fields = {"id": case_id, "status": status, "ts": str(int((time.time() - age_s) * 1000))}
    fields.update({k: str(v) for k, v in extra.items()})
    client.xadd("lq:incidents", fields)  # type: ignore[arg-type]


def place_unit(client: redis.Redis, unit: str, north_m: float, east_m: float) -> None:
    lat, lon = LAT + north_m / 111_320, LON + east_m / 96_900
    client.xadd(
        "lq:pings",
        {
            "unit": unit,
            "lat": str(lat),
            "lon": str(lon),
            "ts": str(int(time.time() * 1000)),
            "status": "available",
        },
    )


def open_case(page: Page, case_id: str) -> None:
    page.fill("#lq-case-search", case_id)
    page.press("#lq-case-search", "Enter")
    page.wait_for_selector(f'.lq-case-head[data-case="{case_id}"]', timeout=10_000)


def test_a_lead_reassigns_from_the_map_and_the_wall_shows_it(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    xadd_case(
        producer,
        "DSP-1",
        "reported",
        lat=LAT,
        lon=LON,
        category="dispute",
        priority=2,
        title="邻里纠纷 <b>未核实</b>",
    )
    xadd_case(producer, "DSP-1", "registered")
    # 1 m away: with the simulator's units moving about, one may pass within 30 m.
    place_unit(producer, "T-NEAR", 1, 0)

    wall = open_page(browser)
    console = open_console(browser, live_demo, "lead")
    try:
        wall.goto(f"{live_demo.url}/wall?token={live_demo.wall_token}")
        wall.wait_for_function(
            "window.lianqin && window.lianqin.cases['DSP-1'] !== undefined", timeout=30_000
        )
        # The wall records when it first sees the change (same machine clock as the console).
        wall.evaluate(
            """() => lq.live.on('changed', () => {
                 const c = window.lianqin.cases['DSP-1'];
                 if (!window.seenAt && c && c.unit === 'T-NEAR' && c.status === 'dispatched')
                   window.seenAt = Date.now();
               })"""
        )
        # The console has the new case from the pushed deltas (its queue row may be below the
        # grid's rendered rows: ag-grid renders only what is in view); the lead clicks its dot.
        console.wait_for_function(
            "window.lianqin && window.lianqin.cases['DSP-1'] !== undefined", timeout=30_000
        )
        console.evaluate(f"() => window.lq.live.map().setView([{LAT}, {LON}], 17)")
        console.wait_for_timeout(500)
        console.click('path[data-case="DSP-1"]')
        console.wait_for_selector('.lq-case-head[data-case="DSP-1"]', timeout=10_000)
        assert console.inner_text(".lq-case-title") == "邻里纠纷 <b>未核实</b>"  # text, not HTML
        near = console.locator('.lq-near[data-unit="T-NEAR"]')
        near.wait_for(timeout=10_000)
        # The unit 1 m away is the first suggestion; a line runs to each suggested unit.
        assert console.get_attribute(".lq-near", "data-unit") == "T-NEAR"
        suggested = console.locator(".lq-near").count()
        console.wait_for_function(
            f"document.querySelectorAll('.lq-near-line').length === {suggested}"
        )
        near.locator("button").click()
        console.wait_for_function(
            "document.querySelector('#lq-assign-unit').innerText.includes('T-NEAR')"
        )
        console.fill("#lq-assign-note", "就近派遣")
        clicked_at = console.evaluate("Date.now()")
        console.click("#lq-assign-button")

        wall.wait_for_function("window.seenAt !== undefined", timeout=10_000)
        latency_ms = wall.evaluate("window.seenAt") - clicked_at
        print(f"\nreassigned on /dispatch → shown on /wall after {latency_ms} ms")
        fill = wall.get_attribute('path[data-case="DSP-1"]', "fill")
        assert fill == STATUS_COLORS["dispatched"]

        console.wait_for_selector(".lq-fb-ok", timeout=10_000)
        console.wait_for_function(
            "document.querySelector('.lq-case-head[data-case=\"DSP-1\"]').dataset.status"
            " === 'dispatched'"
        )
        first = console.inner_text(".lq-tl-item")
        assert "lead" in first and "T-NEAR" in first and "就近派遣" in first
        entries = producer.xrange("lq:changes")
        mine = [f for _, f in entries if f[b"case"] == b"DSP-1"]
        assert mine and mine[-1][b"actor"] == b"user:lead" and mine[-1][b"unit"] == b"T-NEAR"
    finally:
        close_page(console)
        close_page(wall)


def test_a_viewer_cannot_reach_the_console(browser: Browser, live_demo: DemoProcess) -> None:
    page = open_page(browser)
    try:
        sign_in(page, live_demo, "viewer", target="/wall")
        page.wait_for_url("**/wall")
        response = page.goto(f"{live_demo.url}/dispatch")
        assert response is not None and response.status == 403
        assert page.locator("#lq-queue").count() == 0
    finally:
        close_page(page)


def test_an_operator_adds_notes_and_dispatches_only_new_unassigned_cases(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    xadd_case(
        producer,
        "DSP-OP",
        "dispatched",
        lat=LAT + 0.002,
        lon=LON,
        category="noise",
        title="广场舞噪音",
        unit="P-001",
    )
    xadd_case(producer, "DSP-OP-NEW", "registered", lat=LAT + 0.003, lon=LON,
              category="noise", title="夜间施工")  # fmt: skip
    page = open_console(browser, live_demo, "operator")
    try:
        assert "operator" in page.inner_text("#lq-user")
        open_case(page, "DSP-OP")  # assigned already: reassigning is a lead's
        assert not page.locator("#lq-assign-button").is_visible()
        assert not page.locator("#lq-cancel-button").is_visible()
        assert not page.locator("#lq-priority-button").is_visible()
        assert page.locator(".lq-readonly").is_visible()
        page.fill("#lq-note-text", "已电话联系物业")
        page.click("#lq-note-button")
        page.wait_for_selector(".lq-fb-ok", timeout=10_000)
        page.wait_for_function(
            "document.querySelector('.lq-tl-item').innerText.includes('已电话联系物业')",
            timeout=10_000,
        )
        open_case(page, "DSP-OP-NEW")  # new and unassigned: the operator dispatches it
        page.wait_for_selector("#lq-assign-button", state="visible", timeout=10_000)
        assert not page.locator("#lq-cancel-button").is_visible()
    finally:
        close_page(page)


def test_the_keyboard_walks_the_queue_and_picks_the_first_unit(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    page = open_console(browser, live_demo, "lead")
    try:
        page.locator("body").press("j")
        page.wait_for_selector(".lq-case-head[data-case]", timeout=10_000)
        first = page.get_attribute(".lq-case-head", "data-case")
        top = page.evaluate("lq.dispatch.state.open")
        assert first == top
        # The queue's first row is its most urgent case: overdue first, then priority.
        rows = page.evaluate(
            """() => { const api = lq.dispatch.state.api, out = [];
                 api.forEachNodeAfterFilterAndSort(
                   n => out.push([n.data.overdue, n.data.priority]));
                 return out; }"""
        )
        ranks = [(0 if overdue else 1, prio) for overdue, prio in rows]
        assert ranks == sorted(ranks)
        page.locator("body").press("j")
        page.wait_for_function(f"lq.dispatch.state.open !== {first!r}")
        page.locator("body").press("k")
        page.wait_for_function(f"lq.dispatch.state.open === {first!r}")
        if page.locator(".lq-near").count():
            page.locator("body").press("a")
            assert page.evaluate("document.activeElement.id") == "lq-assign-button"
        page.keyboard.press("Escape")
        page.wait_for_function("lq.dispatch.state.open === null")
        page.wait_for_selector(".lq-case-detail .lq-empty")
    finally:
        close_page(page)


def test_the_console_fits_the_screen_and_the_readme_screenshot(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    xadd_case(
        producer,
        "HZ-DEMO-OVERDUE",
        "registered",
        age_s=200,
        lat=LAT - 0.004,
        lon=LON + 0.003,
        category="fire_hazard",
        priority=1,
        source="iot",
        title="配电箱温度异常",
        description="物联感知：3号楼配电箱温度持续升高，需立即到场核查。",
    )
    page = open_console(browser, live_demo, "lead")
    try:
        page.wait_for_timeout(1000)
        open_case(page, "HZ-DEMO-OVERDUE")
        page.wait_for_timeout(1500)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth > innerWidth"
            " || document.documentElement.scrollHeight > innerHeight"
        )
        assert overflow is False
        for selector in ("#lq-queue", "#lq-wall-map", "#lq-case-panel", "#lq-user", "#lq-logout"):
            box = page.locator(selector).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, selector
        target = (
            screenshot_dir() / "dispatch-1920x1080.png"
            if os.environ.get("LIANQIN_UPDATE_SCREENSHOTS") == "1"
            else Path(live_demo.data_dir).parent / "dispatch-1920x1080.png"
        )
        page.screenshot(path=str(target))
        # Signing out ends the session: the console is no longer reachable.
        page.click("#lq-logout button")
        page.wait_for_url("**/login")
        page.goto(f"{live_demo.url}/dispatch")
        assert "/login" in page.url
    finally:
        close_page(page)
