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


def open_console(
    browser: Browser, demo: DemoProcess, user: str, width: int = 1920, height: int = 1080
) -> Page:
    page = open_page(browser, width, height)
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
        # "other" has no response plan: the suggestions are by ETA alone, so the unit 1 m
        # away (a test unit of no known kind) is first.
        category="other",
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


def changes_of(client: redis.Redis, case_id: str) -> list[dict[bytes, bytes]]:
    return [f for _, f in client.xrange("lq:changes") if f[b"case"] == case_id.encode()]


def test_two_leads_on_one_case_the_second_change_is_shown_not_overwritten(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    """Issue 15: the first lead picks a unit; meanwhile the second lead assigns another. The
    first lead's console says what changed and by whom, refuses their click until they
    confirm, then applies their choice on the version they confirmed."""
    xadd_case(producer, "DSP-CC", "registered", lat=LAT + 0.001, lon=LON, category="other",
              title="楼道堆物纠纷")  # fmt: skip
    place_unit(producer, "T-CC1", 112, 0)
    place_unit(producer, "T-CC2", 113, 0)
    first = open_console(browser, live_demo, "lead")
    second = open_console(browser, live_demo, "admin")
    try:
        for page in (first, second):
            open_case(page, "DSP-CC")
        # The first lead starts choosing: T-CC1 in the assign dropdown.
        first.locator('.lq-near[data-unit="T-CC1"] button').click(timeout=60_000)
        first.wait_for_function(
            "document.querySelector('#lq-assign-unit').innerText.includes('T-CC1')",
            timeout=60_000,
        )
        # The second lead assigns T-CC2 first.
        second.locator('.lq-near[data-unit="T-CC2"] button').click(timeout=60_000)
        second.wait_for_function(
            "document.querySelector('#lq-assign-unit').innerText.includes('T-CC2')",
            timeout=60_000,
        )
        second.click("#lq-assign-button")
        second.wait_for_selector(".lq-fb-ok", timeout=60_000)
        assert second.locator("#lq-case-changed").is_hidden()  # their own change
        # The first lead's console says what changed, and by whom.
        notice = first.locator("#lq-case-changed")
        notice.wait_for(state="visible", timeout=60_000)
        text = notice.inner_text()
        assert "T-CC2" in text and "admin" in text and "派遣" in text, text
        # Their click does not overwrite the second lead's change.
        first.click("#lq-assign-button")
        first.wait_for_selector(".lq-fb-error", timeout=60_000)
        assert "请先核对" in first.inner_text("#lq-feedback")
        assert len(changes_of(producer, "DSP-CC")) == 1
        # They confirm the new version; their pending choice is still there; now it applies.
        first.click("#lq-confirm-changed")
        notice.wait_for(state="hidden", timeout=60_000)
        assert "T-CC1" in first.inner_text("#lq-assign-unit")
        first.click("#lq-assign-button")
        first.wait_for_function(
            "(document.querySelector('#lq-feedback').innerText || '').includes('已指派')",
            timeout=60_000,
        )
        mine = changes_of(producer, "DSP-CC")
        assert len(mine) == 2 and mine[-1][b"actor"] == b"user:lead"
        assert mine[-1][b"unit"] == b"T-CC1" and mine[-1][b"base_version"] == mine[0][b"version"]
        target = Path(live_demo.data_dir).parent / "dispatch-conflict-1366x768.png"
        first.set_viewport_size({"width": 1366, "height": 768})
        first.screenshot(path=str(target))
    finally:
        close_page(first)
        close_page(second)


def in_viewport(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert size is not None
    return bool(
        box
        and box["width"] > 0
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def test_at_1366x768_the_map_zooms_to_the_case_and_the_actions_stay_in_view(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    """Issue 15: at 1366×768 the map is usable (> 400 px) and zooms to the opened case with its
    suggestions spread around it; the actions are on screen without scrolling the page; the
    previous case's "已指派 …" goes when another case opens; queue ids show their distinct end."""
    xadd_case(producer, "HZ-20261202-VIEW000001", "registered", lat=LAT - 0.002, lon=LON,
              category="other", title="夜间施工噪音")  # fmt: skip
    xadd_case(producer, "HZ-20261202-VIEW000002", "registered", lat=LAT - 0.0025, lon=LON,
              category="other", title="广场舞噪音")  # fmt: skip
    place_unit(producer, "T-VIEW", -222, 0)  # at the first case's door
    page = open_console(browser, live_demo, "lead", 1366, 768)
    try:
        map_box = page.locator("#lq-wall-map").bounding_box()
        assert map_box and map_box["width"] > 400, map_box
        before = page.evaluate("lq.live.map().getZoom()")
        open_case(page, "HZ-20261202-VIEW000001")
        page.locator('.lq-near[data-unit="T-VIEW"]').wait_for(timeout=10_000)
        page.wait_for_function("lq.dispatch.state.focused === 'HZ-20261202-VIEW000001'")
        zoom = page.evaluate("lq.live.map().getZoom()")
        assert zoom >= 14 and zoom > before, (before, zoom)
        assert page.evaluate(
            f"lq.live.map().getBounds().pad(-0.2).contains([{LAT - 0.002}, {LON}])"
        )
        # The unit at the door is numbered beside the case, not on top of it.
        page.wait_for_selector('.lq-near-badge[data-near="T-VIEW"]')
        apart = page.evaluate(
            """() => { const b = document.querySelector('.lq-near-badge[data-near="T-VIEW"]')
                         .getBoundingClientRect();
                       const c = document.querySelector('path.lq-selected').getBoundingClientRect();
                       const dx = (b.x + b.width / 2) - (c.x + c.width / 2);
                       const dy = (b.y + b.height / 2) - (c.y + c.height / 2);
                       return Math.sqrt(dx * dx + dy * dy); }"""
        )
        assert apart >= 20, apart
        # Every action is on screen, and the page itself does not scroll.
        for button in ("#lq-assign-button", "#lq-priority-button", "#lq-note-button",
                       "#lq-cancel-button"):  # fmt: skip
            assert in_viewport(page, button), button
        assert page.evaluate("document.documentElement.scrollHeight <= innerHeight")
        # Assign, then open another case: the confirmation goes with the case it was about.
        page.locator('.lq-near[data-unit="T-VIEW"] button').click()
        page.wait_for_function(
            "document.querySelector('#lq-assign-unit').innerText.includes('T-VIEW')"
        )
        page.click("#lq-assign-button")
        page.wait_for_function(
            "(document.querySelector('#lq-feedback').innerText || '').includes('已指派')",
            timeout=10_000,
        )
        assert in_viewport(page, "#lq-feedback")
        open_case(page, "HZ-20261202-VIEW000002")
        page.wait_for_function("document.querySelector('#lq-feedback').innerText.trim() === ''")
        # … and so does the unit picked for it: nothing is pre-chosen for the next case.
        page.wait_for_function(
            "!document.querySelector('#lq-assign-unit').innerText.includes('T-VIEW')"
        )
        # Queue ids: the distinguishing end shows, whole (not cut), one per row.
        cells = page.evaluate(
            """() => [...document.querySelectorAll('#lq-queue .ag-cell[col-id="id"]')].map(
                 c => [c.innerText.trim(), c.scrollWidth <= c.clientWidth + 1,
                       c.scrollWidth, c.clientWidth])"""
        )
        texts = [cell[0] for cell in cells]
        assert cells and all(cell[1] for cell in cells), cells
        assert len(set(texts)) == len(texts), texts
        assert any(text.endswith("VIEW000002") for text in texts), texts
        target = Path(live_demo.data_dir).parent / "dispatch-1366x768.png"
        page.screenshot(path=str(target))
        print(f"\nscreenshot: {target}")
    finally:
        close_page(page)
